import ArgumentParser
import Foundation
import DSV2Reference
import DSV2Converter
import DSV2Quantized

/// `--model`, `--engine`, `--quant`, `--threads`: which model `generate`/`chat` run and how.
struct ModelArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A Hugging Face folder or a .dsv2 container (default: the embedded tiny-dsv2).",
                                            valueName: "hf-folder|model.dsv2"))
    var model: String?

    @Option(name: .long, help: "Engine: reference (fp32 oracle) or quantized (default: quantized for .dsv2, reference for a folder).")
    var engine: String?

    @Option(name: .long, help: "Quantization the quantized engine applies to a Hugging Face folder on load (q8, q4, q4-mixed, f16, bf16, f32; default q8).")
    var quant: String?

    @Option(name: .long, help: "Worker threads of the quantized engine (default: the number of cores).")
    var threads: Int?

    @Option(name: .customLong("ctx-size"), help: "Context length in tokens (default: max_position_embeddings).")
    var contextSize: Int?

    func validate() throws {
        if let engine, !["reference", "quantized"].contains(engine) {
            throw ValidationError("unknown --engine \"\(engine)\"; use reference or quantized")
        }
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

    /// Loads `--model` (or the embedded default) with the requested engine.
    ///
    /// | model | engine | what runs |
    /// |---|---|---|
    /// | HF folder | reference (default) | `ReferenceModel`, fp32 from the safetensors |
    /// | HF folder | quantized | `QuantizedEngine` over the folder quantized on load with `--quant` (default q8) |
    /// | .dsv2 | quantized (default) | `QuantizedEngine` with the container's stored types |
    static func load(_ arguments: ModelArguments) throws -> GenerationModel {
        let url = try arguments.model.map { URL(fileURLWithPath: $0) } ?? DefaultModel.locate()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw GenerationModelError.notFound(path: url.path)
        }
        let threads = arguments.threads ?? WorkerPool.defaultThreadCount
        if isDirectory.boolValue {
            let tokenizer = try Tokenizer.load(from: url)
            switch arguments.engine ?? "reference" {
            case "reference":
                if arguments.quant != nil { throw ValidationError("--quant applies to the quantized engine (add --engine quantized)") }
                return GenerationModel(engine: try ReferenceModel(checkpoint: url), tokenizer: tokenizer,
                                       label: "\(url.lastPathComponent) (reference, fp32)")
            default:
                let name = arguments.quant ?? "q8"
                guard let policy = QuantizationPolicy.preset(name) else {
                    throw ValidationError("unknown --quant \"\(name)\"; use one of \(QuantizationPolicy.presetNames.joined(separator: ", "))")
                }
                let source = QuantizingSource(try HFCheckpointSource(folder: url), policy: policy)
                return GenerationModel(engine: try QuantizedEngine(source: source, threads: threads), tokenizer: tokenizer,
                                       label: "\(url.lastPathComponent) (quantized, \(policy.name))")
            }
        }
        if arguments.quant != nil {
            throw ValidationError("--quant applies to a Hugging Face folder; a .dsv2 container runs in the types it was converted to")
        }
        if arguments.engine == "reference" {
            throw GenerationModelError.referenceNeedsFolder(path: url.path)
        }
        let container = try ContainerReader(path: url.path)
        let files = container.tokenizerFiles
        guard let tokenizerJSON = files["tokenizer.json"] else {
            throw GenerationModelError.noTokenizer(path: url.path)
        }
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON, configJSON: files["tokenizer_config.json"],
                                      path: "\(url.path):tokenizer.json", configPath: "\(url.path):tokenizer_config.json")
        let engine = try QuantizedEngine(source: container, threads: threads)
        return GenerationModel(engine: engine, tokenizer: tokenizer,
                               label: "\(url.lastPathComponent) (quantized, \(container.metadata.quantization))")
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
