import Foundation

/// Values derived from the config that every engine needs, computed in one place.
extension ModelConfig {
    /// Width of one query/key head: qk_nope_head_dim + qk_rope_head_dim (192 for V2).
    public var qHeadDim: Int { qkNopeHeadDim + qkRopeHeadDim }

    /// Width of `kv_b_proj`'s output, head by head [k_nope (qk_nope) | v (v_head)].
    public var kvBProjDim: Int { numAttentionHeads * (qkNopeHeadDim + vHeadDim) }

    /// kv_lora_rank + qk_rope_head_dim: one latent row [c_KV | k^R], both the output width of
    /// `kv_a_proj_with_mqa` and what the absorbed MLA form caches per token per layer. Named after
    /// the cache because that is the width that costs memory at every context position; the
    /// projection's output is that same row before its norm and RoPE.
    public var latentCacheWidth: Int { kvLoraRank + qkRopeHeadDim }

    /// Width of the shared-experts MLP: moe_intermediate_size × n_shared_experts (0 if none).
    public var sharedExpertsIntermediateSize: Int { moeIntermediateSize * (nSharedExperts ?? 0) }

    /// Number of routed experts (0 when the model has no MoE).
    public var routedExpertCount: Int { nRoutedExperts ?? 0 }

    /// Experts chosen per token (0 when the model has no MoE).
    public var expertsPerToken: Int { numExpertsPerTok ?? 0 }

    /// docs/NUMERICS.md item 12: layer l is MoE iff n_routed_experts is set, l ≥ first_k_dense_replace
    /// and l % moe_layer_freq == 0.
    public func isMoELayer(_ layer: Int) -> Bool {
        nRoutedExperts != nil && layer >= firstKDenseReplace && layer % moeLayerFreq == 0
    }

    public func isDenseLayer(_ layer: Int) -> Bool { !isMoELayer(layer) }

    /// The indices of the MoE layers.
    public var moeLayers: [Int] { (0..<numHiddenLayers).filter(isMoELayer) }

    /// yarn_get_mscale(scale, mscale) = 0.1·mscale·ln(scale) + 1, or 1 when scale ≤ 1 (docs/NUMERICS.md item 3).
    public static func yarnMScale(factor: Double, mscale: Double) -> Double {
        factor <= 1 ? 1 : 0.1 * mscale * log(factor) + 1
    }

    /// The attention softmax scale (docs/NUMERICS.md item 4): q_head_dim^−0.5, times
    /// yarn_get_mscale(factor, mscale_all_dim)² when rope_scaling is present and mscale_all_dim ≠ 0.
    /// Computed in Double as the original does (0.1147214 for the real V2 configs).
    public var softmaxScale: Double {
        var scale = 1 / Double(qHeadDim).squareRoot()
        if let scaling = ropeScaling, scaling.mscaleAllDim != 0 {
            let m = Self.yarnMScale(factor: scaling.factor, mscale: scaling.mscaleAllDim)
            scale *= m * m
        }
        return scale
    }

    /// Amplitude applied to cos and sin (docs/NUMERICS.md item 3):
    /// yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim); 1 without YaRN.
    public var ropeAmplitude: Double {
        guard let s = ropeScaling else { return 1 }
        return Self.yarnMScale(factor: s.factor, mscale: s.mscale) / Self.yarnMScale(factor: s.factor, mscale: s.mscaleAllDim)
    }

    /// Total parameter count implied by the config (from `expectedTensorShapes()`).
    public var parameterCount: Int {
        expectedTensorShapes().reduce(0) { $0 + $1.shape.reduce(1, *) }
    }
}
