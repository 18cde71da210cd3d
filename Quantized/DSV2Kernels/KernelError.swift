import DSV2Formats
/// Errors of the kernel layer: they name the tensor (when the caller gave one) and the shapes.
public enum KernelError: Error, CustomStringConvertible, Equatable {
    /// The bytes given for a matrix do not match `type.byteCount(rows:columns:)`.
    case byteCountMismatch(name: String, type: WeightType, rows: Int, columns: Int, expected: Int, actual: Int)
    /// A shape is empty or negative.
    case invalidShape(name: String, rows: Int, columns: Int)

    public var description: String {
        switch self {
        case let .byteCountMismatch(name, type, rows, columns, expected, actual):
            return "tensor \(name): \(type.rawValue) [\(rows), \(columns)] needs \(expected) bytes, got \(actual)"
        case let .invalidShape(name, rows, columns):
            return "tensor \(name): invalid shape [\(rows), \(columns)]"
        }
    }
}
