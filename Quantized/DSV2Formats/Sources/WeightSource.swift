import Foundation

/// Anything a model can be loaded from: a `.dsv2` container (`ContainerReader` in DSV2Container)
/// or a Hugging Face folder, raw or quantized in memory. The quantized engine's loader consumes
/// only this protocol.
public protocol WeightSource: AnyObject {
    /// `config.json`, byte for byte as the source holds it.
    var configJSON: Data { get }
    /// Tokenizer and generation files by file name (`tokenizer.json`, `tokenizer_config.json`,
    /// `generation_config.json`), those the source has.
    var tokenizerFiles: [String: Data] { get }
    /// Every tensor name, in storage order.
    var tensorNames: [String] { get }
    /// Type and shape of a tensor without reading its data (nil when there is no such tensor).
    func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])?
    /// The tensor's bytes in the normative layout of its type. Thread-safe.
    func tensor(_ name: String) throws -> StoredTensor
    /// The file or folder the weights come from, for error messages.
    var location: String { get }
    /// The file a tensor's bytes are read from, for error messages (`location` unless the
    /// source is several files).
    func file(of tensor: String) -> String
}

extension WeightSource {
    public var location: String { "the weight source" }
    public func file(of tensor: String) -> String { location }
}

public enum WeightSourceError: Error, CustomStringConvertible, Equatable {
    case missingTensor(source: String, tensor: String)
    case unsupportedConversion(tensor: String, from: WeightType, to: WeightType)

    public var description: String {
        switch self {
        case let .missingTensor(source, tensor):
            return "\(source): no tensor named \(tensor)"
        case let .unsupportedConversion(tensor, from, to):
            return "\(tensor): cannot convert \(from.rawValue) to \(to.rawValue)"
        }
    }
}
