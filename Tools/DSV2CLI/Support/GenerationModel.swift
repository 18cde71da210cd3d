import ArgumentParser
import DSV2
import Foundation

/// The flags of every command that runs one model: `-m/--model`, the engine, `-t/--threads`,
/// `--no-memory-check`, `-v/--verbose`.
struct ModelArguments: ParsableArguments {
    @OptionGroup var selection: ModelSelection
    @OptionGroup var engine: EngineOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var loading: LoadOptions

    var choice: EngineChoice { engine.choice(threads: threads.threads) }

    /// Builds the engine over `model` after the memory check (see `LoadOptions.load`).
    func load(_ model: Model, contextTokens: Int, longestPass: Int, traced: Bool = false,
              logitsRows: Int = 0, logitsCopies: Int = 1) throws -> LanguageModel {
        try loading.load(model, choice, threads: threads.threads, contextTokens: contextTokens, longestPass: longestPass,
                         traced: traced, logitsRows: logitsRows, logitsCopies: logitsCopies)
    }
}

/// A model ready to generate with: the engine, the tokenizer and the defaults that came with it.
struct GenerationModel {
    var model: Model
    var engine: LanguageModel
    var tokenizer: Tokenizer
    var defaults: GenerationDefaults
    /// What was loaded, for messages (`tiny-dsv2.dsv2 (quantized, q8)`).
    var label: String
    /// Most tokens the context holds: `-c/--ctx-size`, else the command's default, at most
    /// max_position_embeddings.
    var contextLength: Int

    /// Opens the model once, then loads the engine sized for at most `neededTokens` tokens of
    /// context (prompt + new tokens; nil = the whole context) and a longest pass of
    /// `longestPass` tokens. `prepare` runs between the two with the tokenizer (to encode the
    /// prompt, whose length the memory estimate needs).
    static func load(_ arguments: ModelArguments, contextSize: Int?, defaultContext: Int? = nil,
                     prepare: (Tokenizer, Int) throws -> (neededTokens: Int?, longestPass: Int)) throws -> GenerationModel {
        let model = try arguments.selection.open()
        let tokenizer = try model.tokenizer()
        let maxPositions = model.config.maxPositionEmbeddings
        let contextLength = contextSize ?? min(defaultContext ?? maxPositions, maxPositions)
        guard contextLength <= maxPositions else {
            throw UsageError("-c/--ctx-size \(contextLength) is above the model's max_position_embeddings (\(maxPositions))")
        }
        let defaults = try model.generationDefaults()
        let (needed, longestPass) = try prepare(tokenizer, contextLength)
        let engine = try arguments.load(model, contextTokens: min(needed ?? contextLength, contextLength), longestPass: longestPass)
        arguments.loading.noteDefaults(defaults)
        return GenerationModel(model: model, engine: engine, tokenizer: tokenizer, defaults: defaults,
                               label: model.label(arguments.choice), contextLength: contextLength)
    }
}
