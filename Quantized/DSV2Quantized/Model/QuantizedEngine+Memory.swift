import DSV2Core
import DSV2Kernels

extension QuantizedEngine {
    /// Cache rows allocated up front (`init`'s `initialContext`); the cache doubles from there.
    public static let initialCacheTokens = 256
    /// `prefillChunkTokens` of a new engine.
    public static let defaultPrefillChunkTokens = 256

    /// Bytes of scratch a run needs besides weights and cache, without allocating it: the decode
    /// workspace, one multi-token workspace for the longest pass (a prompt longer than
    /// `prefillChunkTokens` runs in chunks of that size), and the attention scratch of `threads`
    /// participants (it does not grow with the context). Workspace buffers grow linearly with
    /// their token count, so two small ones (1 and 2 tokens) give the slope.
    public static func scratchBytes(config: ModelConfig, threads: Int, longestPass: Int,
                                    prefillChunkTokens: Int = defaultPrefillChunkTokens) -> Int {
        let one = EngineWorkspace(tokens: 1, config: config).allocatedBytes
        let perToken = EngineWorkspace(tokens: 2, config: config).allocatedBytes - one
        let pass = min(max(1, longestPass), prefillChunkTokens)
        let prefill = pass > 1 ? one + (pass - 1) * perToken : 0
        return one + prefill + AttentionScratch.bytes(config.latentAttentionShape, participants: max(1, threads))
    }

    /// Bytes of latent cache for `contextTokens` tokens: the capacity the cache grows to (doubling
    /// from `initialCacheTokens` rows) × layers × row bytes.
    public static func kvCacheBytes(config: ModelConfig, type: KVCacheType, contextTokens: Int) -> Int {
        let capacity = LatentKVCache.capacity(from: min(initialCacheTokens, config.maxPositionEmbeddings), toHold: contextTokens)
        return capacity * config.latentCacheWidth * type.bytesPerValue * config.numHiddenLayers
    }
}
