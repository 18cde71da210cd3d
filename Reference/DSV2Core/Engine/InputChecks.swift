import Foundation

/// The input checks of the `LanguageModel` contract, shared by every engine so that all of them
/// reject the same calls with the same errors, before touching their cache.
extension LanguageModel {
    /// Throws unless `tokens` is non-empty, every id is inside the vocabulary (`vocab_size`) and
    /// the cache has room for them (`max_position_embeddings`).
    public func checkForwardInput(_ tokens: [Int32]) throws {
        try checkForwardInput(tokens, cachedTokens: cachedTokens)
    }

    /// The same checks for `tokens` after `cached` tokens of another sequence of this engine.
    public func checkForwardInput(_ tokens: [Int32], cachedTokens cached: Int) throws {
        guard !tokens.isEmpty else { throw LanguageModelError.emptyInput }
        if let bad = tokens.first(where: { $0 < 0 || Int($0) >= config.vocabSize }) {
            throw LanguageModelError.tokenOutOfRange(token: bad, vocabSize: config.vocabSize)
        }
        let requested = cached + tokens.count
        guard requested <= config.maxPositionEmbeddings else {
            throw LanguageModelError.contextOverflow(requested: requested, maxPositions: config.maxPositionEmbeddings)
        }
    }

    /// Throws unless `0 ≤ count ≤ cachedTokens` (the precondition of `truncateCache(to:)`).
    public func checkCacheTruncation(to count: Int) throws {
        guard count >= 0, count <= cachedTokens else {
            throw LanguageModelError.badCacheLength(requested: count, cached: cachedTokens)
        }
    }
}
