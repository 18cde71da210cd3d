import Foundation

/// A safetensors file or checkpoint that cannot be used. Every case names the file, and the
/// tensor when one is at fault.
public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
    case cannotOpen(file: String, reason: String)
    case badHeader(file: String, reason: String)
    case badTensorEntry(file: String, tensor: String, reason: String)
    case overlappingTensors(file: String, first: String, second: String)
    case missingTensor(tensor: String, checkpoint: String)
    case wrongShape(tensor: String, file: String, expected: [Int], found: [Int])
    case unsupportedDType(tensor: String, file: String, dtype: String, wanted: String)
    case badIndex(file: String, reason: String)
    case writeFailed(file: String, reason: String)
    /// A NaN or infinite weight, at `row`, `column` of the tensor viewed as [rows, last axis].
    case nonFinite(tensor: String, file: String, row: Int, column: Int)

    public var description: String {
        switch self {
        case let .cannotOpen(file, reason):
            return "\(file): cannot open safetensors file: \(reason)"
        case let .badHeader(file, reason):
            return "\(file): malformed safetensors header: \(reason)"
        case let .badTensorEntry(file, tensor, reason):
            return "\(file): tensor \"\(tensor)\": \(reason)"
        case let .overlappingTensors(file, first, second):
            return "\(file): tensors \"\(first)\" and \"\(second)\" overlap in the data section"
        case let .missingTensor(tensor, checkpoint):
            return "\(checkpoint): tensor \"\(tensor)\" is missing from the checkpoint"
        case let .wrongShape(tensor, file, expected, found):
            return "\(file): tensor \"\(tensor)\" has shape \(found), config.json expects \(expected)"
        case let .unsupportedDType(tensor, file, dtype, wanted):
            return "\(file): tensor \"\(tensor)\" has dtype \(dtype), which cannot be read as \(wanted)"
        case let .badIndex(file, reason):
            return "\(file): malformed shard index: \(reason)"
        case let .writeFailed(file, reason):
            return "\(file): cannot write safetensors file: \(reason)"
        case let .nonFinite(tensor, file, row, column):
            return "\(file): tensor \"\(tensor)\": NaN or infinity at row \(row), column \(column); the checkpoint is damaged"
        }
    }
}
