import Foundation
import DSV2Core
import DSV2Text

/// Why a generation ended.
public enum StopReason: String, Sendable, Codable, Equatable {
    /// An end-of-sequence token was sampled (`eos_token_id`).
    case eos
    /// One of the stop strings appeared in the generated text.
    case stopString = "stop_string"
    /// The requested number of new tokens was produced.
    case maxTokens = "max_tokens"
    /// The context (prompt + generated tokens) reached its limit.
    case contextLimit = "context_limit"
    /// The caller asked to stop (e.g. Ctrl-C, or the task consuming a stream was cancelled).
    case interrupted

    /// The OpenAI-style finish reason: `stop` (EOS or a stop string), `length` (the token or
    /// context limit), `cancelled`.
    public var finishReason: String {
        switch self {
        case .eos, .stopString: return "stop"
        case .maxTokens, .contextLimit: return "length"
        case .interrupted: return "cancelled"
        }
    }
}

/// Errors of a generation request that are the caller's input, not the engine's.
public enum GenerationError: Error, CustomStringConvertible, Equatable {
    /// The prompt alone does not fit in the context.
    case promptTooLong(promptTokens: Int, contextLength: Int)
    case emptyPrompt
    case invalidMaxTokens(Int)
    case invalidContextLength(requested: Int, maxPositions: Int)
    /// A generation was started while another one runs on the same session.
    case busy

    public var description: String {
        switch self {
        case let .promptTooLong(prompt, context):
            return "the prompt has \(prompt) tokens but the context holds at most \(context) (max_position_embeddings or --ctx-size); shorten the prompt"
        case .emptyPrompt:
            return "the prompt is empty (no tokens to start from); give some text, or leave BOS on"
        case let .invalidMaxTokens(n):
            return "the maximum number of new tokens must be at least 1 (got \(n))"
        case let .invalidContextLength(requested, maxPositions):
            return "context length \(requested) is outside 1...\(maxPositions) (max_position_embeddings)"
        case .busy:
            return "a generation is already running on this session (one at a time)"
        }
    }
}

/// Chooses the next token from one row of logits. `history` is every token in the context so far
/// (prompt and generated), for repetition penalties. `Sampler` conforms (below).
public protocol TokenSampler {
    mutating func nextToken(logits: [Float], history: [Int]) -> Int
}

/// What a `GenerationSession.generate` call is asked to do. A field left nil takes the
/// session's default (the model's, `GenerationSession.defaults`).
public struct GenerationRequest: Sendable {
    /// At most this many new tokens (≥ 1).
    public var maxTokens: Int
    /// Generation ends, without emitting it, as soon as the text contains one of these.
    public var stopStrings: [String]
    /// Sampling one of these ends the generation (the token is not shown as text); nil: the
    /// session's EOS ids.
    public var eosTokenIds: Set<Int>?
    /// How tokens are chosen; nil: the session's sampling. Its `seed` is replaced by `seed`.
    public var sampling: SamplingOptions?
    /// The sampler's seed when sampling; nil: a random one (reported in the result).
    public var seed: UInt64?
    /// Report each token's log-probability under the model (log-softmax of the raw logits).
    public var logprobs: Bool
    /// Also report this many most likely alternatives at each step (implies `logprobs`).
    public var topLogprobs: Int

    public init(maxTokens: Int, stopStrings: [String] = [], eosTokenIds: Set<Int>? = nil, sampling: SamplingOptions? = nil,
                seed: UInt64? = nil, logprobs: Bool = false, topLogprobs: Int = 0) {
        self.maxTokens = maxTokens
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
        self.eosTokenIds = eosTokenIds
        self.sampling = sampling
        self.seed = seed
        self.logprobs = logprobs || topLogprobs > 0
        self.topLogprobs = max(0, topLogprobs)
    }
}

/// The outcome of one `generate` call.
public struct GenerationResult: Equatable, Sendable {
    /// The text shown (streamed) to the caller: the generated tokens decoded, without an EOS
    /// token and without a stop string or anything after it.
    public var text: String
    /// Every sampled id, including a final EOS or the token that completed a stop string.
    public var generatedIds: [Int]
    /// Tokens fed before the first sampled one (the prompt, or the part of it not already cached).
    public var promptTokens: Int
    /// Tokens that were already in the KV cache and reused (not recomputed).
    public var reusedTokens: Int
    public var stopReason: StopReason
    /// Wall time of the prompt pass (prefill) in seconds.
    public var promptSeconds: Double
    /// Wall time from the first sampled token to the last one (one decode step per token after the first).
    public var generationSeconds: Double
    /// The sampler's seed; nil when decoding was greedy (or the caller's sampler was used).
    public var seed: UInt64?

    public var generatedTokens: Int { generatedIds.count }
    /// Prompt tokens per second of the prefill (0 when nothing was fed).
    public var promptTokensPerSecond: Double {
        promptSeconds > 0 ? Double(promptTokens) / promptSeconds : 0
    }
    /// Decode speed: each token after the first costs one forward pass and one sampling step.
    public var generationTokensPerSecond: Double {
        generatedIds.count > 1 && generationSeconds > 0 ? Double(generatedIds.count - 1) / generationSeconds : 0
    }
}

/// The generation loop, engine-agnostic over `LanguageModel`: prefill, then sample → stream text →
/// check stops → decode step, with the engine's KV cache kept in step with `contextTokens`.
///
/// The session owns the model's cache: `contextTokens` is exactly what the cache holds, so a later
/// call can continue after it (chat) — `generate(prompt:)` reuses the longest cached prefix of the
/// new prompt and feeds only the rest. One generation runs at a time (a second one started
/// meanwhile throws `GenerationError.busy`); `stream` runs it on its own thread.
public final class GenerationSession: @unchecked Sendable {
    public let model: LanguageModel
    public let tokenizer: Tokenizer
    /// Most tokens (prompt + generated) the context may hold; ≤ max_position_embeddings.
    public let contextLength: Int
    /// The model's EOS ids and sampling, used for what a request leaves unset.
    public let defaults: GenerationDefaults
    /// The tokens in the model's KV cache, in order.
    public private(set) var contextTokens: [Int] = []
    private let running = NSLock()

    /// - Parameters:
    ///   - contextLength: cap on the context; nil means `max_position_embeddings`.
    ///   - defaults: the model's generation defaults (`Model.generationDefaults()`); nil: EOS from
    ///     the config and the tokenizer, `SamplingOptions.standard`.
    public init(model: LanguageModel, tokenizer: Tokenizer, contextLength: Int? = nil,
                defaults: GenerationDefaults? = nil) throws {
        let maxPositions = model.config.maxPositionEmbeddings
        let length = contextLength ?? maxPositions
        guard length >= 1, length <= maxPositions else {
            throw GenerationError.invalidContextLength(requested: length, maxPositions: maxPositions)
        }
        self.model = model
        self.tokenizer = tokenizer
        self.contextLength = length
        self.defaults = try defaults ?? GenerationDefaults(config: model.config, tokenizer: tokenizer, generationConfigJSON: nil)
        model.resetCache()
    }

    /// Empties the context and the KV cache.
    public func reset() {
        model.resetCache()
        contextTokens.removeAll()
    }

    /// Generates a continuation of `prompt` (token ids, BOS included if wanted).
    ///
    /// The longest prefix of `prompt` already in the cache is kept; the cache is truncated to it and
    /// only the remaining tokens are fed (at least one, so there are logits to sample from).
    /// `onText` receives the text as it becomes final: whole UTF-8 characters only, and text that
    /// might be the start of a stop string is held back until it is known not to be.
    /// `shouldStop` is polled once per token; returning true ends with `.interrupted`.
    public func generate<S: TokenSampler>(prompt: [Int], request: GenerationRequest, sampler: inout S,
                                          onText: (String) -> Void = { _ in },
                                          shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        try run(prompt: prompt, request: request, sampler: &sampler, shouldStop: shouldStop) { step in
            switch step {
            case let .token(_, text, _): if !text.isEmpty { onText(text) }
            case let .heldBack(text): onText(text)
            }
        }
    }

    /// Generates a continuation of `prompt` with the request's sampling, or the session's
    /// defaults (the model's generation_config.json).
    public func generate(prompt: [Int], request: GenerationRequest, onText: (String) -> Void = { _ in },
                         shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        var (sampler, seed) = makeSampler(request)
        var result = try generate(prompt: prompt, request: request, sampler: &sampler, onText: onText, shouldStop: shouldStop)
        result.seed = seed
        return result
    }

    /// Encodes `text` as the tokenizer's config says (BOS first when add_bos_token) and generates.
    public func generate(_ text: String, request: GenerationRequest, onText: (String) -> Void = { _ in }) throws -> GenerationResult {
        try generate(prompt: tokenizer.encode(text, addSpecialTokens: true), request: request, onText: onText)
    }

    /// The continuation of `prompt` as a stream of events: each sampled token with the text it
    /// made final (and its log-probability when asked), any held-back text at the end, then
    /// `.finished` with the whole result. The generation runs on its own thread; it stops at the
    /// next token when the task iterating the stream is cancelled (or stops iterating), and
    /// finishes with `stopReason == .interrupted`.
    public func stream(prompt: [Int], request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        AsyncThrowingStream { continuation in
            let cancelled = CancellationFlag()
            continuation.onTermination = { _ in cancelled.set() }
            let thread = Thread { [self] in
                do {
                    var (sampler, seed) = makeSampler(request)
                    var result = try run(prompt: prompt, request: request, sampler: &sampler, shouldStop: { cancelled.isSet }) { step in
                        switch step {
                        case let .token(id, text, logits):
                            let probabilities = request.logprobs
                                ? TokenLogprobs(logits: logits, chosen: id, top: request.topLogprobs, tokenizer: tokenizer) : nil
                            continuation.yield(.token(GeneratedToken(id: id, text: text, logprob: probabilities?.chosen,
                                                                     topLogprobs: probabilities?.top ?? [])))
                        case let .heldBack(text):
                            continuation.yield(.text(text))
                        }
                    }
                    result.seed = seed
                    continuation.yield(.finished(result))
                    continuation.finish()
                } catch {
                    continuation.finish(throwing: error)
                }
            }
            thread.name = "dsv2 generation"
            thread.start()
        }
    }

    /// `stream(prompt:request:)` for text, encoded as the tokenizer's config says.
    public func stream(_ text: String, request: GenerationRequest) -> AsyncThrowingStream<GenerationEvent, Error> {
        do { return stream(prompt: try tokenizer.encode(text, addSpecialTokens: true), request: request) } catch {
            return AsyncThrowingStream { $0.finish(throwing: error) }
        }
    }

    /// The sampler of `request` (or the defaults) and its seed (nil when greedy).
    private func makeSampler(_ request: GenerationRequest) -> (Sampler, UInt64?) {
        var options = request.sampling ?? defaults.sampling
        guard options.temperature > 0 else { return (Sampler(options: options), nil) }
        let seed = request.seed ?? UInt64.random(in: 0...UInt64(UInt32.max))
        options.seed = seed
        return (Sampler(options: options), seed)
    }

    /// One step of `run`: a sampled token (not EOS) with the text it made final and the logits it
    /// was drawn from, or text held back for a stop string and released at the end.
    private enum Step {
        case token(Int, String, [Float])
        case heldBack(String)
    }

    private func run<S: TokenSampler>(prompt: [Int], request: GenerationRequest, sampler: inout S,
                                      shouldStop: () -> Bool, onStep: (Step) -> Void) throws -> GenerationResult {
        guard running.try() else { throw GenerationError.busy }
        defer { running.unlock() }
        guard !prompt.isEmpty else { throw GenerationError.emptyPrompt }
        guard request.maxTokens >= 1 else { throw GenerationError.invalidMaxTokens(request.maxTokens) }
        guard prompt.count <= contextLength else {
            throw GenerationError.promptTooLong(promptTokens: prompt.count, contextLength: contextLength)
        }
        let eosTokenIds = request.eosTokenIds ?? defaults.eosTokenIds

        // Reuse the cached prefix; feed at least the last prompt token to get its logits.
        var reused = zip(contextTokens, prompt).prefix(while: { $0 == $1 }).count
        reused = min(reused, prompt.count - 1)
        if reused < contextTokens.count {
            try model.truncateCache(to: reused)
            contextTokens.removeSubrange(reused...)
        }
        let fresh = Array(prompt[reused...])

        let promptStart = DispatchTime.now().uptimeNanoseconds
        var logits = try feed(fresh)
        let promptSeconds = Self.seconds(since: promptStart)

        var result = GenerationResult(text: "", generatedIds: [], promptTokens: fresh.count, reusedTokens: reused,
                                      stopReason: .maxTokens, promptSeconds: promptSeconds, generationSeconds: 0)
        var decoder = tokenizer.streamingDecoder(skipSpecialTokens: false)
        var stops = StopStringMatcher(stopStrings: request.stopStrings)
        var history = contextTokens
        var firstTokenTime: UInt64 = 0

        while true {
            if shouldStop() { result.stopReason = .interrupted; break }
            // The sequence may hold at most `contextLength` tokens: the next sampled one sits at
            // position contextTokens.count and must be inside the context.
            if contextTokens.count >= contextLength { result.stopReason = .contextLimit; break }

            let token = sampler.nextToken(logits: logits, history: history)
            if firstTokenTime == 0 { firstTokenTime = DispatchTime.now().uptimeNanoseconds }
            result.generatedIds.append(token)
            history.append(token)

            if eosTokenIds.contains(token) { result.stopReason = .eos; break }
            var text = "", hitStop = false
            if let piece = try decoder.step(token) { (text, hitStop) = stops.feed(piece) }
            result.text += text
            onStep(.token(token, text, logits))
            if hitStop { result.stopReason = .stopString; break }
            if result.generatedIds.count >= request.maxTokens { result.stopReason = .maxTokens; break }
            // Feeding `token` would leave no position for the next one.
            if contextTokens.count + 1 >= contextLength { result.stopReason = .contextLimit; break }
            logits = try feed([token])
        }
        if firstTokenTime > 0 { result.generationSeconds = Self.seconds(since: firstTokenTime) }
        // Held-back text that never became a stop string is part of the output.
        if result.stopReason != .stopString {
            let rest = stops.flush()
            if !rest.isEmpty { result.text += rest; onStep(.heldBack(rest)) }
        }
        return result
    }

    /// Feeds tokens after the context and returns the last row of logits.
    private func feed(_ tokens: [Int]) throws -> [Float] {
        let logits = try model.forward(tokens: tokens.map { Int32(truncatingIfNeeded: $0) }, logits: .last)
        contextTokens.append(contentsOf: tokens)
        return logits
    }

    private static func seconds(since start: UInt64) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds &- start) / 1e9
    }
}

extension Sampler: TokenSampler {
    public mutating func nextToken(logits: [Float], history: [Int]) -> Int {
        sample(logits: logits, previousTokens: history)
    }
}
