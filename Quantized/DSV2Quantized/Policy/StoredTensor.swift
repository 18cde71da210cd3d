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
    /// Keeps `bytes` valid (a `MappedFile`, a `TensorBuffer`, ...).
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

/// A heap buffer aligned for SIMD loads and page-granular access (the destination of
/// decompressed or quantized tensors). Memory is zero-initialised.
public final class TensorBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let count: Int

    /// `alignment` must be a power of two ≥ 16; 64 (a cache line) by default, 4096 for large buffers.
    public init(count: Int, alignment: Int? = nil) {
        let align = alignment ?? (count >= 1 << 20 ? 4096 : 64)
        var raw: UnsafeMutableRawPointer?
        let status = posix_memalign(&raw, align, max(count, 1))
        guard status == 0, let raw else {
            // Out of memory is not user input: nothing sensible to continue with.
            fatalError("TensorBuffer: cannot allocate \(count) bytes")
        }
        memset(raw, 0, max(count, 1))
        pointer = raw
        self.count = count
    }

    deinit { free(pointer) }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: count) }
    public var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: count) }
}
