import DSV2Core

/// The state of one sequence of the quantized engine: its latent KV cache (one `LatentKVCache`
/// per layer) and the number of tokens it holds. The engine's `LanguageModel` methods run on a
/// sequence of its own; a server makes one per slot (`QuantizedEngine.makeSequence`) and runs
/// them together with `forward(batch:)`. Only the engine that made a sequence may run it.
public final class SequenceState {
    let caches: [LatentKVCache]
    /// Tokens held in the cache (= position of the next token).
    public internal(set) var cachedTokens = 0

    init(config: ModelConfig, type: KVCacheType, capacity: Int) {
        caches = (0..<config.numHiddenLayers).map { _ in
            LatentKVCache(width: config.latentCacheWidth, type: type, capacity: capacity)
        }
    }

    /// Empties the cache (next token at position 0); the memory stays allocated.
    public func reset() {
        caches.forEach { $0.removeAll() }
        cachedTokens = 0
    }

    /// Keeps only the first `count` tokens. Throws if `count` is negative or above `cachedTokens`.
    public func truncate(to count: Int) throws {
        guard count >= 0, count <= cachedTokens else {
            throw LanguageModelError.badCacheLength(requested: count, cached: cachedTokens)
        }
        caches.forEach { $0.truncate(to: count) }
        cachedTokens = count
    }

    /// Bytes of cache allocated (capacity, not only the cached tokens).
    public var allocatedBytes: Int { caches.reduce(0) { $0 + $1.allocatedBytes } }

    /// Makes room for `needed` tokens in every layer.
    func reserve(_ needed: Int) {
        for cache in caches { cache.reserve(needed) }
    }
}
