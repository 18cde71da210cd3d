import ArgumentParser
import Foundation
import DSV2Container
import DSV2Core
import DSV2Quantized
import DSV2Text

/// `--model`, `--engine`, `--quant`, `--threads`: which model `generate`/`chat` run and how.
struct ModelArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A Hugging Face folder or a .dsv2 container (default: the embedded tiny-dsv2).",
                                            valueName: "hf-folder|model.dsv2"))
    var model: String?

    @Option(name: .long, help: "Engine: reference (fp32 oracle) or quantized (default: quantized for .dsv2, reference for a folder).")
    var engine: EngineKind?

    @Option(name: .long, help: "Quantized engine: the preset to quantize to while loading (q8, q4, q4-mixed, f16, bf16, f32; default q8 for a folder, the stored one for a .dsv2).")
    var quant: String?

    @Option(name: .long, help: "Worker threads of the quantized engine (default: the number of cores; 1 for a model of hidden size ≤ 512).")
    var threads: Int?

    @Option(name: .customLong("ctx-size"), help: "Context length in tokens (default: max_position_embeddings).")
    var contextSize: Int?

    @Flag(name: .customLong("no-verify"), help: "Skip the load-time check of a raw .dsv2 container's checksums and finiteness.")
    var noVerify = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if let contextSize, contextSize < 1 { throw ValidationError("--ctx-size must be at least 1") }
    }
}

/// A model ready to generate with: the engine and the tokenizer that came with it.
struct GenerationModel {
    var engine: LanguageModel
    var tokenizer: Tokenizer
    /// What was loaded, for messages (`tiny-dsv2.dsv2 (quantized, q8)`).
    var label: String

    /// Loads `--model` (or the embedded default) with the requested engine through the engine
    /// factory (`makeEngine`), and the tokenizer that comes with the model.
    ///
    /// | model | engine | what runs |
    /// |---|---|---|
    /// | HF folder | reference (default) | `ReferenceModel`, fp32 from the safetensors |
    /// | HF folder | quantized | `QuantizedEngine`, quantized on load with `--quant` (default q8) |
    /// | .dsv2 | quantized (default) | `QuantizedEngine` with the container's stored types (or `--quant`) |
    static func load(_ arguments: ModelArguments) throws -> GenerationModel {
        let url = try arguments.model.map { URL(fileURLWithPath: $0) } ?? DefaultModel.locate()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw GenerationModelError.notFound(path: url.path)
        }
        let name = url.lastPathComponent
        if isDirectory.boolValue {
            let tokenizer = try Tokenizer.load(from: url)
            switch arguments.engine ?? .reference {
            case .reference:
                let engine = try makeEngine(kind: .reference, modelPath: url, quant: arguments.quant)
                return GenerationModel(engine: engine, tokenizer: tokenizer, label: "\(name) (reference, fp32)")
            case .quantized:
                let made = try makeQuantizedEngine(modelPath: url, quant: arguments.quant, threads: arguments.threads,
                                               verify: !arguments.noVerify)
                chooseThreads(made.engine, requested: arguments.threads)
                return GenerationModel(engine: made.engine, tokenizer: tokenizer, label: "\(name) (quantized, \(made.quantization))")
            }
        }
        if arguments.engine == .reference {
            throw GenerationModelError.referenceNeedsFolder(path: url.path)
        }
        let container = try ContainerReader(path: url.path)
        let files = container.tokenizerFiles
        guard let tokenizerJSON = files["tokenizer.json"] else {
            throw GenerationModelError.noTokenizer(path: url.path)
        }
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON, configJSON: files["tokenizer_config.json"],
                                      path: "\(url.path):tokenizer.json", configPath: "\(url.path):tokenizer_config.json")
        let made = try makeQuantizedEngine(modelPath: url, quant: arguments.quant, threads: arguments.threads,
                                               verify: !arguments.noVerify)
        chooseThreads(made.engine, requested: arguments.threads)
        return GenerationModel(engine: made.engine, tokenizer: tokenizer, label: "\(name) (quantized, \(made.quantization))")
    }

    /// Below this hidden size a decode step's products take microseconds each, less than handing
    /// work to another thread: tiny-dsv2 (hidden 192) decodes 2-4x faster on one thread than on
    /// two (2-core VM, `generate --json`, interleaved runs: 440-2070 vs 120-1070 tokens/s).
    static let singleThreadHiddenSize = 512

    /// Without `--threads`, a tiny model runs on one thread.
    private static func chooseThreads(_ engine: QuantizedEngine, requested: Int?) {
        if requested == nil, engine.config.hiddenSize <= singleThreadHiddenSize { engine.setThreadCount(1) }
    }
}

enum GenerationModelError: Error, CustomStringConvertible {
    case notFound(path: String)
    case noTokenizer(path: String)
    case referenceNeedsFolder(path: String)

    var description: String {
        switch self {
        case let .notFound(path):
            return "\(path): no such model folder or .dsv2 file"
        case let .noTokenizer(path):
            return "\(path): the container holds no tokenizer.json (convert from a folder that has one)"
        case let .referenceNeedsFolder(path):
            return "\(path): the reference engine reads Hugging Face folders (safetensors); run a .dsv2 container with --engine quantized"
        }
    }
}
