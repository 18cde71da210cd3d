import Foundation
import DSV2Container
import DSV2Core
import DSV2Formats
import DSV2GGUF
import DSV2Generation
import DSV2Text
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A model on disk, opened once: its config, its weights as a `WeightSource`, its tokenizer and
/// generation defaults, and the engines that can run it (`makeEngine`). The one way the command
/// line and library users open a model.
///
/// ```swift
/// let model = try Model.open("path/to/DeepSeek-V2-Lite-Chat")     // or "model.dsv2"
/// let engine = try model.makeEngine(.quantized(preset: "q4"))
/// let tokenizer = try model.tokenizer()
/// ```
///
/// | path | `format` | weights | tokenizer |
/// |---|---|---|---|
/// | a Hugging Face folder (config.json, safetensors) | `.huggingFace` | the mapped safetensors, every tensor checked against config.json | tokenizer.json + tokenizer_config.json of the folder |
/// | a `.dsv2` container | `.container` | the mapped container (header, table and embedded files checked) | the copies embedded in the container |
/// | a GGUF file (`deepseek2`) | `.gguf` | the mapped GGUF, tensors under Hugging Face names (Q8_0/Q4_0 in place as q8/q4) | tokenizer.json synthesised from `tokenizer.ggml.*` |
public final class Model: @unchecked Sendable {
    public enum Format: String, Sendable {
        case huggingFace = "hf"
        case container = "dsv2"
        case gguf
    }

    /// The path that was opened.
    public let url: URL
    public let format: Format
    public let config: ModelConfig
    /// The weights as stored: `HFCheckpointSource` for a folder, `ContainerReader` for a container.
    public let weights: WeightSource
    /// The quantization preset a container was written with (`q8`, `q4`, …); nil for a folder
    /// (its tensors are the checkpoint's own floats).
    public var storedQuantization: String? { (weights as? ContainerReader)?.metadata.quantization }
    /// tokenizer.json, tokenizer_config.json, generation_config.json: those the model has.
    public var files: [String: Data] { weights.tokenizerFiles }

    private let lock = NSLock()
    private var cachedTokenizer: Tokenizer?

    init(url: URL, format: Format, config: ModelConfig, weights: WeightSource) {
        self.url = url
        self.format = format
        self.config = config
        self.weights = weights
    }

    // MARK: Opening

    /// Opens a Hugging Face checkpoint folder, a `.dsv2` container or a GGUF file. Only metadata is read: the
    /// weights stay memory-mapped until an engine loads them. Anything else (a missing path, a
    /// folder without config.json, a FIFO or device) is refused without blocking, with an error
    /// naming the path.
    /// `verify: false` skips the load-time check of a raw container's tensor checksums and
    /// finiteness (docs/LIMITS.md), so a mapped model pages in lazily.
    public static func open(_ path: String, verify: Bool = true) throws -> Model {
        try open(URL(fileURLWithPath: path), verify: verify)
    }

    public static func open(_ url: URL, verify: Bool = true) throws -> Model {
        switch try ModelPath.kind(of: url.path) {
        case .directory:
            let configFile = url.appendingPathComponent("config.json")
            guard (try? ModelPath.kind(of: configFile.path)) == .regularFile else {
                throw ModelOpenError.noConfig(folder: url.path)
            }
            let source = try HFCheckpointSource(folder: url)
            return Model(url: url, format: .huggingFace, config: source.config, weights: source)
        case .regularFile:
            if url.lastPathComponent == "config.json" { throw ModelOpenError.configFileGiven(path: url.path) }
            if GGUFModel.isGGUF(url) {
                let gguf = try GGUFModel.open(path: url.path)
                return Model(url: url, format: .gguf, config: gguf.config, weights: gguf.weights)
            }
            let reader = try ContainerReader(path: url.path, verifyRawTensors: verify)
            let config = try ModelConfig.decode(reader.configJSON, file: "\(url.path):config.json")
            return Model(url: url, format: .container, config: config, weights: reader)
        }
    }

    /// The embedded default model, tiny-dsv2 (see `DefaultModel`).
    public static func openDefault() throws -> Model {
        try open(DefaultModel.locate())
    }

    // MARK: Tokenizer and generation defaults

    /// Whether the model comes with a tokenizer (synthetic checkpoints have none).
    public var hasTokenizer: Bool { files["tokenizer.json"] != nil }

    /// The model's tokenizer, built on first use (tokenizer.json + tokenizer_config.json).
    public func tokenizer() throws -> Tokenizer {
        lock.lock(); defer { lock.unlock() }
        if let cachedTokenizer { return cachedTokenizer }
        guard let json = files["tokenizer.json"] else { throw ModelOpenError.noTokenizer(path: url.path, format: format) }
        let tokenizer = try Tokenizer(tokenizerJSON: json, configJSON: files["tokenizer_config.json"],
                                      path: filePath("tokenizer.json"), configPath: filePath("tokenizer_config.json"))
        cachedTokenizer = tokenizer
        return tokenizer
    }

    /// EOS ids (config.json, the tokenizer, generation_config.json) and sampling parameters
    /// (generation_config.json over `SamplingOptions.standard`).
    public func generationDefaults() throws -> GenerationDefaults {
        try GenerationDefaults(config: config, tokenizer: hasTokenizer ? try tokenizer() : nil,
                               generationConfigJSON: files["generation_config.json"],
                               path: filePath("generation_config.json"))
    }

    /// How a file of the model is named in messages: `folder/name` or `model.dsv2:name`.
    func filePath(_ name: String) -> String {
        format == .huggingFace ? url.appendingPathComponent(name).path : "\(url.path):\(name)"
    }

    /// `name (quantized, q8)`: what runs, for messages.
    public func label(_ choice: EngineChoice) -> String {
        "\(url.lastPathComponent) (\(choice.kindName), \(quantization(choice)))"
    }
}

/// Why a path cannot be opened as a model.
public enum ModelOpenError: Error, CustomStringConvertible, Equatable {
    case notFound(path: String)
    case notModelFile(path: String, kind: String)
    case noConfig(folder: String)
    case configFileGiven(path: String)
    case noTokenizer(path: String, format: Model.Format)

    public var description: String {
        switch self {
        case let .notFound(path):
            return "\(path): no such model folder, .dsv2 or .gguf file"
        case let .notModelFile(path, kind):
            return "\(path) is \(kind), not a model folder, .dsv2 or .gguf file"
        case let .noConfig(folder):
            return "\(folder): the folder has no config.json (a Hugging Face checkpoint folder holds config.json and safetensors)"
        case let .configFileGiven(path):
            return "\(path): give the checkpoint folder that holds config.json, not the file"
        case let .noTokenizer(path, format):
            return format == .huggingFace
                ? "\(path) has no tokenizer.json: text cannot be encoded (use token ids, or a folder with its tokenizer)"
                : "\(path) holds no tokenizer.json: text cannot be encoded (use token ids, or convert from a folder that has one)"
        }
    }
}

/// What a model path points at, found with `stat` (which never blocks, unlike opening a FIFO).
enum ModelPath {
    enum Kind { case directory, regularFile }

    static func kind(of path: String) throws -> Kind {
        var info = stat()
        guard stat(path, &info) == 0 else {
            if errno == ENOENT || errno == ENOTDIR { throw ModelOpenError.notFound(path: path) }
            throw ModelOpenError.notModelFile(path: path, kind: "unreadable (\(String(cString: strerror(errno))))")
        }
        switch info.st_mode & S_IFMT {
        case S_IFDIR: return .directory
        case S_IFREG: return .regularFile
        case S_IFIFO: throw ModelOpenError.notModelFile(path: path, kind: "a FIFO")
        case S_IFCHR, S_IFBLK: throw ModelOpenError.notModelFile(path: path, kind: "a device")
        case S_IFSOCK: throw ModelOpenError.notModelFile(path: path, kind: "a socket")
        default: throw ModelOpenError.notModelFile(path: path, kind: "not a regular file")
        }
    }
}

extension Model {
    /// A generation session over a new engine `choice` with this model's tokenizer and defaults
    /// (EOS ids, generation_config.json's sampling): what a library user generates with.
    /// - Parameter contextLength: most tokens of context; nil: max_position_embeddings.
    public func session(_ choice: EngineChoice = .quantized(), contextLength: Int? = nil) throws -> GenerationSession {
        try GenerationSession(model: makeEngine(choice), tokenizer: tokenizer(), contextLength: contextLength,
                              defaults: generationDefaults())
    }
}
