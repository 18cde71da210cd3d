import ArgumentParser
import Foundation
import DSV2Reference
import DSV2Converter

/// `--model`, `--engine`, `--quant`, `--threads`: which model `generate`/`chat` run and how.
struct ModelArguments: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp("A Hugging Face folder or a .dsv2 container (default: the embedded tiny-dsv2).",
                                            valueName: "hf-folder|model.dsv2"))
    var model: String?

    @Option(name: .long, help: "Engine: reference (fp32 oracle) or quantized (default: quantized for .dsv2, reference for a folder).")
    var engine: String?

    @Option(name: .long, help: "Quantization the quantized engine applies to a Hugging Face folder (q8, q4, q4-mixed, ...).")
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
    static func load(_ arguments: ModelArguments) throws -> GenerationModel {
        let url = try arguments.model.map { URL(fileURLWithPath: $0) } ?? DefaultModel.locate()
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw GenerationModelError.notFound(path: url.path)
        }
        if isDirectory.boolValue {
            let tokenizer = try Tokenizer.load(from: url)
            let engine = try ReferenceModel(checkpoint: url)
            return GenerationModel(engine: engine, tokenizer: tokenizer, label: "\(url.lastPathComponent) (reference)")
        }
        let container = try ContainerReader(path: url.path)
        let files = container.tokenizerFiles
        guard let tokenizerJSON = files["tokenizer.json"] else {
            throw GenerationModelError.noTokenizer(path: url.path)
        }
        let tokenizer = try Tokenizer(tokenizerJSON: tokenizerJSON, configJSON: files["tokenizer_config.json"],
                                      path: "\(url.path):tokenizer.json", configPath: "\(url.path):tokenizer_config.json")
        throw GenerationModelError.engineUnavailable(path: url.path, tokenizerIds: tokenizer.vocabularySize)
    }
}

enum GenerationModelError: Error, CustomStringConvertible {
    case notFound(path: String)
    case noTokenizer(path: String)
    case engineUnavailable(path: String, tokenizerIds: Int)

    var description: String {
        switch self {
        case let .notFound(path):
            return "\(path): no such model folder or .dsv2 file"
        case let .noTokenizer(path):
            return "\(path): the container holds no tokenizer.json (convert from a folder that has one)"
        case let .engineUnavailable(path, _):
            return "\(path): running a .dsv2 container needs the quantized engine, which this build lacks"
        }
    }
}
