import DSV2Core
import Foundation

/// One weight tensor as the engine consumes it: HF name, storage type, shape and its bytes in
/// the normative layout of `type` (see `WeightType`), kept alive by `owner`.
///
/// The same value comes out of a `.dsv2` container (zero-copy from the mapped file, or
/// decompressed into an aligned buffer) and out of in-memory quantization of a HF checkpoint,
/// so the engine computes with bit-identical bytes whichever way a model was loaded.
public struct StoredTensor: @unchecked Sendable {
    /// The Hugging Face tensor name, verbatim (e.g. `model.layers.3.mlp.experts.17.up_proj.weight`).
    public let name: String
    public let type: WeightType
    /// Row-major shape; the last axis is the input (column) dimension of a matrix.
    public let shape: [Int]
    /// `type.byteCount(rows:columns:)` bytes (see `StoredTensor.rowsAndColumns`).
    public let bytes: UnsafeRawBufferPointer
    /// Keeps `bytes` valid (a `MappedFile`, an `AlignedBuffer`, ...).
    public let owner: AnyObject

    public init(name: String, type: WeightType, shape: [Int], bytes: UnsafeRawBufferPointer, owner: AnyObject) {
        self.name = name
        self.type = type
        self.shape = shape
        self.bytes = bytes
        self.owner = owner
    }

    public var elementCount: Int { shape.reduce(1, *) }

    /// A tensor viewed as a matrix: rows = product of the leading axes, columns = the last axis
    /// (a 1-D tensor is one row). Quantized blocks run along the columns.
    public static func rowsAndColumns(_ shape: [Int]) -> (rows: Int, columns: Int) {
        guard let columns = shape.last else { return (1, 1) }   // a scalar
        return (shape.dropLast().reduce(1, *), columns)
    }

    /// Bytes a tensor of `shape` occupies when stored as `type`.
    public static func byteCount(shape: [Int], type: WeightType) -> Int {
        let (rows, columns) = rowsAndColumns(shape)
        return type.byteCount(rows: rows, columns: columns)
    }
}

extension StoredTensor {
    /// The first NaN or infinity, as (row, column) of the matrix view, or nil when all values are
    /// finite. q8/q4: the first non-finite block scale, at its block's first column (their
    /// integers are always finite; a bad scale makes its whole block NaN or infinite).
    /// `byteRange` restricts the search to the values (scales) whose bytes start in it, so a
    /// caller can check a large tensor piece by piece while its bytes are in cache.
    public func firstNonFinite(inByteRange byteRange: Range<Int>? = nil) -> (row: Int, column: Int)? {
        let range = byteRange ?? 0..<bytes.count
        guard let base = bytes.baseAddress else { return nil }
        let (rows, columns) = Self.rowsAndColumns(shape)
        let format: FloatFormat, start: Int, valueCount: Int
        switch type {
        case .f32: (format, start, valueCount) = (.f32, 0, rows * columns)
        case .f16: (format, start, valueCount) = (.f16, 0, rows * columns)
        case .bf16: (format, start, valueCount) = (.bf16, 0, rows * columns)
        case .q8, .q4:
            (format, start, valueCount) = (.f16, type.scalesOffset(rows: rows, columns: columns), rows * WeightType.blocksPerRow(columns))
        }
        // Values i with start + i·size in range, clamped to the tensor.
        let size = format.byteCount
        let first = max(0, (range.lowerBound - start + size - 1) / size)
        let end = min(valueCount, max(0, (range.upperBound - start + size - 1) / size))
        guard first < end, start + end * size <= bytes.count else { return nil }
        guard let index = format.firstNonFinite(in: UnsafeRawBufferPointer(start: base + start + first * size, count: (end - first) * size))
        else { return nil }
        let value = first + index
        if type.isQuantized {
            let blocks = WeightType.blocksPerRow(columns)
            return (value / blocks, value % blocks * WeightType.blockSize)
        }
        return (value / columns, value % columns)
    }
}
