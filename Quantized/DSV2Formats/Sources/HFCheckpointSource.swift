import Foundation
import DSV2Core

/// A Hugging Face checkpoint folder (single-file or sharded safetensors) as a `WeightSource`:
/// tensors in their source type (bf16 / f16 / f32), zero-copy from the mapped shards.
///
/// `init` checks every tensor against the config before any data is read: each expected name
/// present with the expected shape and a float dtype, and no tensor the config does not expect
/// (`SafetensorsCheckpoint.validate(against:)`, the reference's check too). Errors name the file
/// and the tensor.
public final class HFCheckpointSource: WeightSource, @unchecked Sendable {
    public let url: URL
    public let checkpoint: SafetensorsCheckpoint
    public let config: ModelConfig
    public let configJSON: Data
    public let tokenizerFiles: [String: Data]
    /// Names in model order (`ModelConfig.expectedTensorShapes`).
    public let tensorNames: [String]
    private let infos: [String: (type: WeightType, shape: [Int])]

    /// The files copied verbatim into a container when present.
    public static let tokenizerFileNames = ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]

    public init(folder url: URL) throws {
        self.url = url
        let configURL = url.appendingPathComponent("config.json")
        do { configJSON = try Data(contentsOf: configURL) } catch {
            throw ModelConfigError(file: configURL.path, field: nil, message: "cannot be read (\(error.localizedDescription))")
        }
        config = try ModelConfig.decode(configJSON, file: configURL.path)
        var files: [String: Data] = [:]
        for name in Self.tokenizerFileNames {
            let fileURL = url.appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: fileURL.path) {
                do { files[name] = try Data(contentsOf: fileURL) } catch {
                    throw SafetensorsError.cannotOpen(file: fileURL.path, reason: error.localizedDescription)
                }
            }
        }
        tokenizerFiles = files
        checkpoint = try SafetensorsCheckpoint(url: url)
        try checkpoint.validate(against: config)
        let expected = config.expectedTensorShapes()
        var infos: [String: (type: WeightType, shape: [Int])] = [:]
        for (name, shape) in expected {
            let info = try checkpoint.info(name)
            guard let type = Self.weightType(info.dtype) else {
                throw SafetensorsError.unsupportedDType(tensor: name, file: info.file.path, dtype: info.dtype.rawValue,
                                                        wanted: "a weight (F32, F16 or BF16)")
            }
            infos[name] = (type, shape)
        }
        self.infos = infos
        tensorNames = expected.map(\.name)
    }

    static func weightType(_ dtype: SafetensorsDType) -> WeightType? {
        switch dtype {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }

    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? { infos[name] }

    public func tensor(_ name: String) throws -> StoredTensor {
        guard let info = infos[name] else { throw WeightSourceError.missingTensor(source: url.path, tensor: name) }
        let bytes = try checkpoint.rawBytes(name)
        return StoredTensor(name: name, type: info.type, shape: info.shape, bytes: bytes, owner: checkpoint)
    }

    public var location: String { url.path }

    public func file(of tensor: String) -> String { (try? checkpoint.info(tensor).file.path) ?? location }

    /// The shard files (for provenance).
    public var files: [URL] { checkpoint.files.map(\.url) }
}

/// Any source with its tensors converted by a policy: the in-memory equivalent of converting
/// to a container and loading it (bit-identical bytes, same `TensorConversion` routine).
public final class QuantizingSource: WeightSource, @unchecked Sendable {
    public let base: WeightSource
    public let policy: QuantizationPolicy
    public init(_ base: WeightSource, policy: QuantizationPolicy) {
        self.base = base
        self.policy = policy
    }
    public var configJSON: Data { base.configJSON }
    public var location: String { base.location }
    public func file(of tensor: String) -> String { base.file(of: tensor) }
    public var tokenizerFiles: [String: Data] { base.tokenizerFiles }
    public var tensorNames: [String] { base.tensorNames }
    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        base.tensorInfo(name).map { (policy.type(for: name, shape: $0.shape), $0.shape) }
    }
    public func tensor(_ name: String) throws -> StoredTensor {
        let source = try base.tensor(name)
        return try TensorConversion.convert(source, to: policy.type(for: name, shape: source.shape), file: base.file(of: name))
    }
}
