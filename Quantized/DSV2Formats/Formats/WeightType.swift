/// The storage types of a weight tensor. The byte layouts are normative and documented in
/// `docs/FORMAT.md` ("Weight types"); the container stores these bytes verbatim.
///
/// Quantized types work on blocks of `blockSize` (32) consecutive values along the input
/// dimension (the last axis). A row of `columns` values holds `ceil(columns / 32)` blocks; the
/// values past `columns` in the last block are zero, so every row length works.
///
/// A quantized 2-D tensor [rows, columns] is stored as two planes (structure of arrays: keeping
/// the scales apart from the packed integers makes the SIMD kernels simpler and faster):
///   1. quants: rows × blocksPerRow × bytesPerBlockQuants bytes, row-major;
///   2. scales: rows × blocksPerRow Float16 values (IEEE binary16, little-endian),
///      starting at the quants size rounded up to 64 bytes.
public enum WeightType: String, CaseIterable, Sendable, Codable {
    case f32
    case f16
    case bf16
    /// int8, blocks of 32, one f16 scale per block: x ≈ d · q, q ∈ [-127, 127], d = max|x| / 127.
    case q8
    /// 4-bit, blocks of 32, one f16 scale per block: x ≈ d · (u − 8), u ∈ [0, 15].
    /// Byte j of a block holds value j in its low nibble and value j + 16 in its high nibble.
    case q4

    public static let blockSize = 32

    public var isQuantized: Bool { self == .q8 || self == .q4 }

    /// Bytes of packed integers per block of 32 values (quantized types only).
    public var quantBytesPerBlock: Int {
        switch self {
        case .q8: return 32
        case .q4: return 16
        default: return 0
        }
    }

    /// Bytes per element for the float types.
    public var bytesPerElement: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q8, .q4: return 0
        }
    }

    /// Blocks in a row of `columns` values.
    public static func blocksPerRow(_ columns: Int) -> Int { (columns + blockSize - 1) / blockSize }

    /// Byte offset of the scales plane of a quantized tensor.
    public func scalesOffset(rows: Int, columns: Int) -> Int {
        let quants = rows * WeightType.blocksPerRow(columns) * quantBytesPerBlock
        return (quants + 63) & ~63
    }

    /// Total bytes of a tensor of this type with `rows` rows of `columns` values.
    public func byteCount(rows: Int, columns: Int) -> Int {
        if isQuantized {
            return scalesOffset(rows: rows, columns: columns) + rows * WeightType.blocksPerRow(columns) * 2
        }
        return rows * columns * bytesPerElement
    }
}
