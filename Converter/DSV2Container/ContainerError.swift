import DSV2Formats
/// Errors about a `.dsv2` container; each names the file and the tensor or field.
public enum ContainerError: Error, CustomStringConvertible, Equatable {
    case notAContainer(path: String)
    case unsupportedVersion(path: String, found: UInt32, supported: UInt32)
    case truncated(path: String, detail: String)
    case corruptHeader(path: String, detail: String)
    case corruptMetadata(path: String, detail: String)
    case corruptTensor(path: String, tensor: String, detail: String)
    case checksumMismatch(path: String, tensor: String, expected: String, found: String)
    /// A NaN or infinity stored with a valid checksum (the converter never writes one), at `row`,
    /// `column` of the tensor viewed as a matrix (q8/q4: the first column of the bad block).
    case nonFinite(path: String, tensor: String, row: Int, column: Int)
    case missingTensor(path: String, tensor: String)
    case cannotWrite(path: String, reason: String)
    case exists(path: String)

    public var description: String {
        switch self {
        case let .notAContainer(path):
            return "\(path): not a dsv2 container (bad magic; an unfinished or foreign file)"
        case let .unsupportedVersion(path, found, supported):
            return "\(path): container format version \(found) is not supported (this build reads version \(supported))"
        case let .truncated(path, detail):
            return "\(path): truncated container: \(detail)"
        case let .corruptHeader(path, detail):
            return "\(path): corrupt header: \(detail)"
        case let .corruptMetadata(path, detail):
            return "\(path): corrupt metadata: \(detail)"
        case let .corruptTensor(path, tensor, detail):
            return "\(path): tensor \(tensor): \(detail)"
        case let .checksumMismatch(path, tensor, expected, found):
            return "\(path): tensor \(tensor): checksum mismatch (expected \(expected), found \(found))"
        case let .nonFinite(path, tensor, row, column):
            return "\(path): tensor \(tensor): NaN or infinity at row \(row), column \(column)"
        case let .missingTensor(path, tensor):
            return "\(path): no tensor named \(tensor)"
        case let .cannotWrite(path, reason):
            return "\(path): cannot write: \(reason)"
        case let .exists(path):
            return "\(path): already exists (use --force to overwrite)"
        }
    }

    /// The tensor the error is about, if any.
    public var tensor: String? {
        switch self {
        case let .corruptTensor(_, tensor, _), let .checksumMismatch(_, tensor, _, _), let .missingTensor(_, tensor),
             let .nonFinite(_, tensor, _, _):
            return tensor
        default: return nil
        }
    }
}
