import Foundation

/// Which rows of logits a forward pass returns.
public enum LogitsRows: Sendable {
    /// One row per input token, [T, vocab] (perplexity, golden dumps).
    case all
    /// Only the last input token's row, [1, vocab] (generation).
    case last
    /// No logits: the pass only fills the KV cache (e.g. a chat turn's prompt before its last token).
    case none
}

/// An engine that runs a DeepSeek-V2 model with an internal KV cache. Both the fp32 reference
/// (`ReferenceModel`) and the quantized engine conform; code that only runs a model (generation,
/// dump, perplexity) needs nothing else.
///
/// Positions are implicit: the tokens of a call occupy positions `cachedTokens ..< cachedTokens + T`,
/// attend causally to everything cached plus the earlier tokens of the call, and are appended
/// to the cache. A prefill is one call with the whole prompt; a decode step is a call with one
/// token.
public protocol LanguageModel: AnyObject {
    var config: ModelConfig { get }

    /// Number of tokens held in the KV cache (= position of the next token).
    var cachedTokens: Int { get }

    /// Runs `tokens` after the cached ones and returns logits row-major, `rows × vocabSize`
    /// (`rows` = T for `.all`, 1 for `.last`, 0 for `.none`).
    ///
    /// Throws (leaving the cache unchanged) when a token id is outside the vocabulary or the
    /// context would exceed `max_position_embeddings`. `tracer`, when given, is offered the named
    /// intermediates of this call (see `ForwardTracer` and `TraceName`).
    func forward(tokens: [Int32], logits: LogitsRows, tracer: ForwardTracer?) throws -> [Float]

    /// Empties the KV cache (next token at position 0).
    func resetCache()

    /// Keeps only the first `count` cached tokens (e.g. to drop a rejected suffix in chat).
    /// Throws if `count` is negative or larger than `cachedTokens`.
    func truncateCache(to count: Int) throws
}

extension LanguageModel {
    /// `forward` without tracing.
    public func forward(tokens: [Int32], logits: LogitsRows = .last) throws -> [Float] {
        try forward(tokens: tokens, logits: logits, tracer: nil)
    }
}

/// Errors of a forward pass caused by its input.
public enum LanguageModelError: Error, CustomStringConvertible, Equatable {
    case tokenOutOfRange(token: Int32, vocabSize: Int)
    case contextOverflow(requested: Int, maxPositions: Int)
    case badCacheLength(requested: Int, cached: Int)
    case emptyInput

    public var description: String {
        switch self {
        case let .tokenOutOfRange(token, vocab):
            return "token id \(token) is outside the vocabulary (0..<\(vocab))"
        case let .contextOverflow(requested, maxPositions):
            return "context of \(requested) tokens exceeds max_position_embeddings (\(maxPositions))"
        case let .badCacheLength(requested, cached):
            return "cannot truncate the KV cache to \(requested) tokens: it holds \(cached)"
        case .emptyInput:
            return "forward called with no tokens"
        }
    }
}
