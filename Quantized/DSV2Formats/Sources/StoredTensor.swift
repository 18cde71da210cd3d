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
