import ArgumentParser
import Foundation
import DSV2

/// The sampling and stopping flags shared by `generate` and `chat`. A sampling flag not given
/// takes the model's default (generation_config.json, else `SamplingOptions.standard`).
/// Numbers are read `.unconditional`ly, so `--seed -1` or `--temp -1` is a value (then checked),
/// not an unknown flag.
struct SamplingArguments: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Most new tokens per generation.")
    var maxTokens: Int = 128

    @Option(name: .customLong("temp"), parsing: .unconditional,
            help: "Temperature; 0 = greedy (always the most likely token). Default: the model's (generation_config.json), else 0.8.")
    var temperature: Float?

    @Option(name: .customLong("top-k"), parsing: .unconditional, help: "Keep only the K most likely tokens (0 = off). Default: the model's, else 40.")
    var topK: Int?

    @Option(name: .customLong("top-p"), parsing: .unconditional,
            help: "Keep the smallest set of tokens whose probability reaches P (1 = off). Default: the model's, else 0.95.")
    var topP: Float?

    @Option(name: .customLong("min-p"), parsing: .unconditional,
            help: "Drop tokens less likely than M times the most likely one (0 = off). Default: the model's, else 0.05.")
    var minP: Float?

    @Option(name: .customLong("repeat-penalty"), parsing: .unconditional,
            help: "Penalty on tokens already in the context (1 = off; HF repetition_penalty). Default: the model's, else 1.")
    var repeatPenalty: Float?

    @Option(name: .long, parsing: .unconditional,
            help: "Random seed; negative or absent = a random one, printed with the statistics. The same seed gives the same text.")
    var seed: Int64?

    @Option(name: .customLong("stop"), help: "Stop when the text contains this string (repeatable); the string is not printed.")
    var stopStrings: [String] = []

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("-n/--max-tokens must be at least 1") }
        if let temperature, !(temperature >= 0) || !temperature.isFinite { throw ValidationError("--temp must be a finite number ≥ 0") }
        if let topK, topK < 0 { throw ValidationError("--top-k must be ≥ 0") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if let minP, !(minP >= 0 && minP <= 1) { throw ValidationError("--min-p must be in [0, 1]") }
        if let repeatPenalty, !(repeatPenalty > 0) || !repeatPenalty.isFinite {
            throw ValidationError("--repeat-penalty must be a finite number > 0")
        }
        if stopStrings.contains("") { throw ValidationError("--stop needs a non-empty string") }
    }

    /// The model's defaults with the flags given on top, and the seed: `--seed` when ≥ 0, a
    /// random one otherwise; nil when decoding is greedy (nothing random to reproduce).
    func options(over defaults: SamplingOptions) -> (options: SamplingOptions, seed: UInt64?) {
        var options = defaults
        if let temperature { options.temperature = temperature }
        if let topK { options.topK = topK }
        if let topP { options.topP = topP }
        if let minP { options.minP = minP }
        if let repeatPenalty { options.repetitionPenalty = repeatPenalty }
        guard options.temperature > 0 else {
            options.seed = 0
            return (options, nil)
        }
        let seed = seed.flatMap { $0 >= 0 ? UInt64($0) : nil } ?? UInt64.random(in: 0...UInt64(UInt32.max))
        options.seed = seed
        return (options, seed)
    }

    /// The request (EOS ids: the session's, i.e. the model's).
    func request() -> GenerationRequest {
        GenerationRequest(maxTokens: maxTokens, stopStrings: stopStrings)
    }
}
