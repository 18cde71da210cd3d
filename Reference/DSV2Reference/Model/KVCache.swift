import Foundation
import DSV2Core

/// Which of the two equivalent forms of MLA the reference runs (paper section 2.1).
public enum AttentionForm: String, Sendable, CaseIterable {
    /// The paper's definition: k^C and v^C are up-projected for every cached token (eqs. 10-11)
    /// and the cache holds full per-head keys and values, heads·(qHeadDim + vHeadDim) per token.
    case expanded
    /// W^UK folded into the query and W^UV applied after attention ("absorbed", section 2.1.2):
    /// the cache holds only the normalised latent c_KV and the rotated shared key k^R,
    /// kv_lora_rank + qk_rope_head_dim values per token.
    case absorbed
}

/// The KV cache of one layer. Only the arrays of the active `AttentionForm` are used.
final class LayerKVCache {
    /// Expanded form: [tokens, heads, qHeadDim], each head [k^C (qk_nope) | k^R (qk_rope)].
    var keys: [Float] = []
    /// Expanded form: [tokens, heads, vHeadDim].
    var values: [Float] = []
    /// Absorbed form: [tokens, kvLoraRank + qkRopeHeadDim] = [c_KV | k^R].
    var latent: [Float] = []
    private(set) var count = 0

    func appended(_ tokens: Int) { count += tokens }

    func removeAll() {
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        latent.removeAll(keepingCapacity: true)
        count = 0
    }

    func truncate(to newCount: Int) {
        guard newCount < count else { return }
        if !keys.isEmpty { keys.removeLast(keys.count / count * (count - newCount)) }
        if !values.isEmpty { values.removeLast(values.count / count * (count - newCount)) }
        if !latent.isEmpty { latent.removeLast(latent.count / count * (count - newCount)) }
        count = newCount
    }
}
