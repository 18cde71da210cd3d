import Foundation
import Synchronization
import DSV2

/// What a request asks the scheduler to generate.
struct GenerationParameters: Sendable {
    /// Most new tokens; the scheduler also stops when the context is full.
    var maxTokens: Int
    var stopStrings: [String] = []
    var eosTokenIds: Set<Int> = []
    var sampling: SamplingOptions = .greedy
    /// Alternatives to report per generated token (0...20); nil = no log-probabilities.
    var logprobs: Int?
    /// Also report each prompt token's log-probability (`echo` with `logprobs`): the whole
    /// prompt is then computed, without prefix reuse.
    var promptLogprobs = false
}

/// Why a generation ended.
enum FinishReason: String, Sendable {
    /// End-of-sequence token or a stop string (OpenAI "stop").
    case stop
    /// `max_tokens` or the context (OpenAI "length").
    case length
    /// The client went away.
    case cancelled
}

/// The closing figures of a generation.
struct FinishReport: Sendable {
    var reason: FinishReason
    /// Text held back as a possible stop string that turned out not to be one.
    var tail: String
    var promptTokens: Int
    /// Prompt tokens reused from a slot's cache (not computed again).
    var cachedTokens: Int
    var completionTokens: Int
    /// Seconds from submission to the first generated token, and from it to the last one.
    var firstTokenSeconds: Double
    var decodeSeconds: Double
}

/// What the scheduler reports to the request that submitted a job, in order: `started` (once
/// it has a slot), `promptLogprobs` (with `promptLogprobs`), one `token` per generated token
/// (its final text, which may be empty while a stop string is possible), then `finished` or
/// `failed`.
enum GenerationEvent: Sendable {
    case started(cachedTokens: Int)
    /// Log-probabilities of the prompt tokens fed in one step (nil for the first prompt token).
    case promptLogprobs([PositionLogprobs?])
    case token(id: Int, text: String, logprobs: PositionLogprobs?)
    case finished(FinishReport)
    case failed(String)
}

/// One request's generation. Created by `BatchScheduler.submit`; the request reads `events` and
/// calls `cancel()` when its client goes away. Everything else belongs to the scheduler thread.
final class GenerationJob: @unchecked Sendable {
    let prompt: [Int]
    let parameters: GenerationParameters
    let events: AsyncStream<GenerationEvent>
    let continuation: AsyncStream<GenerationEvent>.Continuation
    let submitted = DispatchTime.now().uptimeNanoseconds
    private let cancelled = Atomic<Bool>(false)

    // Scheduler thread only.
    var slot: Slot?
    /// Prompt tokens in the slot's cache (reused or fed).
    var fed = 0
    var cachedTokens = 0
    /// The last sampled token, to be fed in the next step.
    var pendingToken: Int?
    var sampler: Sampler
    var decoder: StreamingDecoder
    var stops: StopStringMatcher
    var history: [Int]
    var generated = 0
    var firstTokenTime: UInt64 = 0

    init(prompt: [Int], parameters: GenerationParameters, tokenizer: Tokenizer) {
        self.prompt = prompt
        self.parameters = parameters
        (events, continuation) = AsyncStream.makeStream(of: GenerationEvent.self)
        sampler = Sampler(options: parameters.sampling)
        decoder = tokenizer.streamingDecoder(skipSpecialTokens: false)
        stops = StopStringMatcher(stopStrings: parameters.stopStrings)
        history = prompt
    }

    /// Asks the scheduler to drop this job (its slot is freed at the start of the next step).
    func cancel() { cancelled.store(true, ordering: .relaxed) }
    var isCancelled: Bool { cancelled.load(ordering: .relaxed) }
}

/// One sequence slot: a latent cache and the tokens it holds (kept after its job ends, for
/// prefix reuse by a later request).
final class Slot {
    let index: Int
    let sequence: SequenceState
    var tokens: [Int] = []
    var job: GenerationJob?
    /// Scheduler tick of the last release (least recently used is reclaimed first).
    var lastUsed: UInt64 = 0

    init(index: Int, sequence: SequenceState) {
        self.index = index
        self.sequence = sequence
    }
}
