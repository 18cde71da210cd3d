import Foundation
import DSV2Text

/// One event of `GenerationSession.stream`.
public enum GenerationEvent: Sendable {
    /// A sampled token (EOS is not reported: it ends the generation) and the text it made final.
    case token(GeneratedToken)
    /// Text held back because it could have been the start of a stop string, released at the end
    /// when it did not become one.
    case text(String)
    /// The end: the whole result (text, ids, `stopReason` and its `finishReason`, token counts,
    /// timings, seed).
    case finished(GenerationResult)
}

/// A sampled token as `stream` reports it.
public struct GeneratedToken: Sendable, Equatable {
    public var id: Int
    /// The text this token made final: whole UTF-8 characters only, so it may be empty (a
    /// character spread over several tokens appears with its last one), and text that could
    /// start a stop string waits until it cannot.
    public var text: String
    /// Natural log of the token's probability under the model (log-softmax of the raw logits,
    /// before temperature and the other sampling steps); nil unless the request asked.
    public var logprob: Double?
    /// The most likely tokens at this step, most likely first (`GenerationRequest.topLogprobs`).
    public var topLogprobs: [TokenLogprob]

    public init(id: Int, text: String, logprob: Double? = nil, topLogprobs: [TokenLogprob] = []) {
        self.id = id
        self.text = text
        self.logprob = logprob
        self.topLogprobs = topLogprobs
    }
}

/// A token and its log-probability.
public struct TokenLogprob: Sendable, Equatable {
    public var id: Int
    /// The token decoded alone (a piece of a UTF-8 character decodes to U+FFFD).
    public var text: String
    public var logprob: Double
}

/// Log-probabilities of one step, from its logits: a stable log-softmax in Float64.
struct TokenLogprobs {
    let chosen: Double
    let top: [TokenLogprob]

    init(logits: [Float], chosen id: Int, top count: Int, tokenizer: Tokenizer) {
        let maximum = Double(logits.max() ?? 0)
        var sum = 0.0
        for value in logits { sum += exp(Double(value) - maximum) }
        let logNormalizer = maximum + log(sum)
        chosen = id < logits.count ? Double(logits[id]) - logNormalizer : -.infinity
        guard count > 0 else { top = []; return }
        // The `count` largest logits, ties to the lower id (as argmax).
        var best: [Int] = []
        for i in logits.indices {
            if best.count == count, logits[i] <= logits[best[count - 1]] { continue }
            let at = best.firstIndex { logits[i] > logits[$0] } ?? best.count
            best.insert(i, at: at)
            if best.count > count { best.removeLast() }
        }
        top = best.map { TokenLogprob(id: $0, text: tokenizer.decode([$0]), logprob: Double(logits[$0]) - logNormalizer) }
    }
}

/// Set once from any thread (a stream's termination), read by the generation loop.
final class CancellationFlag: @unchecked Sendable {
    private let lock = NSLock()
    private var value = false

    func set() { lock.lock(); value = true; lock.unlock() }
    var isSet: Bool { lock.lock(); defer { lock.unlock() }; return value }
}
