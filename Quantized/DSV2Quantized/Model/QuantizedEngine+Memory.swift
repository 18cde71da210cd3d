import DSV2Core
import DSV2Kernels

extension QuantizedEngine {
    /// Cache rows allocated up front (`init`'s `initialContext`); the cache doubles from there.
    public static let initialCacheTokens = 256
    /// `prefillChunkTokens` of a new engine.
    public static let defaultPrefillChunkTokens = 1024

    /// Bytes of scratch a run needs besides weights and cache, without allocating it: the decode
    /// workspace, one multi-token workspace for the longest pass (a prompt longer than
    /// `prefillChunkTokens` runs in chunks of that size; past `feedForwardPartTokens` rows its
    /// feed-forward block runs in parts, unless `wholePass`: a traced pass), the decode attention
    /// scratch of `threads` participants (it does not grow with the context), and the expanded
    /// attention's for that pass over `contextTokens` keys. Workspace buffers grow linearly with
    /// their token count, so two small ones give the slope.
    public static func scratchBytes(config: ModelConfig, threads: Int, longestPass: Int, contextTokens: Int,
                                    prefillChunkTokens: Int = defaultPrefillChunkTokens, wholePass: Bool = false) -> Int {
        let one = EngineWorkspace(tokens: 1, config: config).allocatedBytes
        let perToken = EngineWorkspace(tokens: 2, config: config).allocatedBytes - one
        func whole(_ rows: Int) -> Int { one + (rows - 1) * perToken }
        let pass = min(max(1, longestPass), prefillChunkTokens), part = feedForwardPartTokens
        let prefill: Int
        if pass <= 1 {
            prefill = 0
        } else if wholePass || pass <= part {
            prefill = whole(pass)
        } else {
            // Attention's buffers for every row, and the feed-forward parts (full ones and the last).
            let split2 = EngineWorkspace(tokens: 2, config: config, feedForwardTokens: 1).allocatedBytes
            let split3 = EngineWorkspace(tokens: 3, config: config, feedForwardTokens: 1).allocatedBytes
            prefill = split2 + (pass - 2) * (split3 - split2) + 2 * whole(part)
        }
        let attention = AttentionScratch.bytes(config.latentAttentionShape, participants: max(1, threads))
        let expanded = ExpandedAttentionScratch.bytes(config: config, participants: max(1, threads), rows: pass,
                                                      keys: contextTokens)
        return one + prefill + attention + expanded
    }

    /// Bytes of latent cache for `contextTokens` tokens: the capacity the cache grows to (doubling
    /// from `initialCacheTokens` rows) × layers × row bytes.
    public static func kvCacheBytes(config: ModelConfig, type: KVCacheType, contextTokens: Int) -> Int {
        let capacity = LatentKVCache.capacity(from: min(initialCacheTokens, config.maxPositionEmbeddings), toHold: contextTokens)
        return capacity * config.latentCacheWidth * type.bytesPerValue * config.numHiddenLayers
    }
}
