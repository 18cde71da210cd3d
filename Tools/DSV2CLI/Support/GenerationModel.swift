import ArgumentParser
import DSV2
import Foundation

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

    func validate() throws {
        if let contextSize, contextSize < 1 { throw ValidationError("--ctx-size must be at least 1") }
    }
}

/// A model ready to generate with: the engine and the tokenizer that came with it.
struct GenerationModel {
    var model: Model
    var engine: LanguageModel
    var tokenizer: Tokenizer
    var defaults: GenerationDefaults
    /// What was loaded, for messages (`tiny-dsv2.dsv2 (quantized, q8)`).
    var label: String

    var eosTokenIds: Set<Int> { defaults.eosTokenIds }

    /// Opens `--model` (or the embedded default) once and builds the requested engine over it.
    ///
    /// | model | engine | what runs |
    /// |---|---|---|
    /// | HF folder | reference (default) | `ReferenceModel`, fp32 from the safetensors |
    /// | HF folder | quantized | `QuantizedEngine`, quantized on load with `--quant` (default q8) |
    /// | .dsv2 | quantized (default) | `QuantizedEngine` with the container's stored types (or `--quant`) |
    static func load(_ arguments: ModelArguments) throws -> GenerationModel {
        let model = try arguments.model.map { try Model.open($0) } ?? Model.openDefault()
        let tokenizer = try model.tokenizer()
        let kind = arguments.engine ?? (model.format == .huggingFace ? .reference : .quantized)
        let choice = try engineChoice(kind: kind, quant: arguments.quant, threads: arguments.threads)
        let engine = try model.makeEngine(choice)
        return GenerationModel(model: model, engine: engine, tokenizer: tokenizer, defaults: try model.generationDefaults(),
                               label: model.label(choice))
    }
}
