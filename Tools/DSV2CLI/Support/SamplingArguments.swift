import ArgumentParser
import Foundation
import DSV2

/// The sampling and stopping flags shared by `generate` and `chat`.
struct SamplingArguments: ParsableArguments {
    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Most new tokens per generation.")
    var maxTokens: Int = 128

    @Option(name: .customLong("temp"), help: "Temperature; 0 = greedy (always the most likely token).")
    var temperature: Float = 0.8

    @Option(name: .customLong("top-k"), help: "Keep only the K most likely tokens (0 = off).")
    var topK: Int = 40

    @Option(name: .customLong("top-p"), help: "Keep the smallest set of tokens whose probability reaches P (1 = off).")
    var topP: Float = 0.95

    @Option(name: .customLong("min-p"), help: "Drop tokens less likely than M times the most likely one (0 = off).")
    var minP: Float = 0.05

    @Option(name: .customLong("repeat-penalty"), help: "Penalty on tokens already in the context (1 = off; HF repetition_penalty).")
    var repeatPenalty: Float = 1.0

    @Option(name: .long, help: "Random seed (default: a random one, printed with the statistics). The same seed gives the same text.")
    var seed: UInt64?

    @Option(name: .customLong("stop"), help: "Stop when the text contains this string (repeatable); the string is not printed.")
    var stopStrings: [String] = []

    func validate() throws {
        if maxTokens < 1 { throw ValidationError("-n/--max-tokens must be at least 1") }
        if !(temperature >= 0) || !temperature.isFinite { throw ValidationError("--temp must be a finite number ≥ 0") }
        if topK < 0 { throw ValidationError("--top-k must be ≥ 0") }
        if !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if !(minP >= 0 && minP <= 1) { throw ValidationError("--min-p must be in [0, 1]") }
        if !(repeatPenalty > 0) || !repeatPenalty.isFinite { throw ValidationError("--repeat-penalty must be a finite number > 0") }
        if stopStrings.contains("") { throw ValidationError("--stop needs a non-empty string") }
    }

    /// The seed actually used: `--seed` or a fresh random one.
    func resolvedSeed() -> UInt64 { seed ?? UInt64.random(in: 0...UInt64(UInt32.max)) }

    func request(eosTokenIds: Set<Int>) -> GenerationRequest {
        GenerationRequest(maxTokens: maxTokens, stopStrings: stopStrings, eosTokenIds: eosTokenIds)
    }
}

extension SamplingArguments {
    /// tok's `Sampler` configured by these flags.
    func makeSampler(seed: UInt64) -> Sampler {
        Sampler(options: SamplingOptions(temperature: temperature, topK: topK, topP: topP, minP: minP,
                                         repetitionPenalty: repeatPenalty, seed: seed))
    }
}
