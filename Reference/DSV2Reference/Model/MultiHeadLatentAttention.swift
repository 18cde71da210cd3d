import Foundation
import DSV2Core

/// Multi-head Latent Attention, DeepSeek-V2 paper (arXiv 2405.04434) section 2.1.
///
/// Notation of the paper → code: h_t = `x` (after input_layernorm), n_h = `heads`,
/// d_h = qk_nope_head_dim (`nope`) for keys/queries and v_head_dim (`vDim`) for values,
/// d_h^R = qk_rope_head_dim (`ropeDim`), d_c = kv_lora_rank (`rank`).
///
/// Checkpoint layout (docs/NUMERICS.md item 5): `kv_a_proj_with_mqa` = [W^DKV; W^KR], output
/// [c_KV | k^R]; `kv_b_proj` = [W^UK_1; W^UV_1; W^UK_2; W^UV_2; …], head by head; `q_proj`
/// (or `q_b_proj`) = [W^UQ_1; W^QR_1; …], head by head.
struct MultiHeadLatentAttention {
    let config: ModelConfig
    let weights: AttentionWeights<Matrix, [Float], Matrix>
    let softmaxScale: Float

    init(config: ModelConfig, weights: AttentionWeights<Matrix, [Float], Matrix>) {
        self.config = config
        self.weights = weights
        // 1/sqrt(d_h + d_h^R) of eq. 18, times the YaRN mscale² (docs/NUMERICS.md item 4).
        softmaxScale = Float(config.softmaxScale)
    }

    /// q_a_layernorm and kv_a_layernorm use a hard-coded eps (docs/NUMERICS.md item 6).
    static let latentNormEps: Float = 1e-6

    /// Attention output u_t (eq. 19) for the `tokens` rows of `x` [tokens, hidden], which sit at
    /// positions cache.count ..< cache.count + tokens; appends their keys/values to `cache`.
    func forward(_ x: [Float], tokens: Int, layer: Int, rope: RopeTable, cache: LayerKVCache,
                 form: AttentionForm, tracer: ForwardTracer?) -> [Float] {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, ropeDim = config.qkRopeHeadDim
        let qHead = config.qHeadDim, rank = config.kvLoraRank

        // Queries, per head [q^C (d_h) | q^R (d_h^R)].
        var q: [Float]  // [tokens, heads·qHead]
        switch weights.query {
        case let .plain(qProj):
            q = qProj.apply(x, tokens: tokens)
        case let .lowRank(qAProj, qALayernorm, qBProj):
            let cQ = rmsNorm(qAProj.apply(x, tokens: tokens), rows: tokens, width: qAProj.rows,
                             weight: qALayernorm, eps: Self.latentNormEps)   // eq. 12: c^Q_t = W^DQ h_t, [tokens, qLoraRank]
            q = qBProj.apply(cQ, tokens: tokens)                             // eqs. 13-14: q^C_t = W^UQ c^Q_t, W^QR c^Q_t
        }

        // eq. 9 (c_KV_t = W^DKV h_t) and the input of eq. 15 (W^KR h_t), in one projection.
        let kvA = weights.kvAProjWithMQA.apply(x, tokens: tokens)  // [tokens, rank + ropeDim]
        var latentRaw = [Float](repeating: 0, count: tokens * rank)
        var kRope = [Float](repeating: 0, count: tokens * ropeDim)   // [tokens, ropeDim]: k^R_t, shared by all heads
        for t in 0..<tokens {
            for i in 0..<rank { latentRaw[t * rank + i] = kvA[t * (rank + ropeDim) + i] }
            for i in 0..<ropeDim { kRope[t * ropeDim + i] = kvA[t * (rank + ropeDim) + rank + i] }
        }
        // kv_a_layernorm normalises the latent only; the normalised c_KV is what eqs. 10-11 consume.
        let latent = rmsNorm(latentRaw, rows: tokens, width: rank, weight: weights.kvALayernorm,
                             eps: Self.latentNormEps)  // [tokens, rank]
        if let tracer, tracer.wants(TraceName.kvLatent(layer)) {
            tracer.record(TraceName.kvLatent(layer), TracedTensor(shape: [tokens, rank], floats: latent))
        }

        // eqs. 14-15: RoPE on q^R (every head) and k^R (once), docs/NUMERICS.md item 1.
        var scratch = [Float](repeating: 0, count: ropeDim)
        scratch.withUnsafeMutableBufferPointer { s in
            kRope.withUnsafeMutableBufferPointer { k in
                for t in 0..<tokens {
                    rope.rotate(k.baseAddress! + t * ropeDim, row: t, into: k.baseAddress! + t * ropeDim, scratch: s.baseAddress!)
                }
            }
            q.withUnsafeMutableBufferPointer { qp in
                for t in 0..<tokens {
                    for h in 0..<heads {
                        let qR = qp.baseAddress! + (t * heads + h) * qHead + nope
                        rope.rotate(qR, row: t, into: qR, scratch: s.baseAddress!)
                    }
                }
            }
        }

        var output = [Float](repeating: 0, count: tokens * heads * config.vHeadDim)  // [tokens, heads·vDim]: [o_t,1; …; o_t,n_h]
        switch form {
        case .expanded:
            expandedAttention(q: q, latent: latent, kRope: kRope, tokens: tokens, cache: cache, into: &output)
        case .absorbed:
            absorbedAttention(q: q, latent: latent, kRope: kRope, tokens: tokens, cache: cache, into: &output)
        }
        return weights.oProj.apply(output, tokens: tokens)  // eq. 19: u_t = W^O [o_t,1; …; o_t,n_h]
    }

    /// The paper's definition: up-project keys and values, cache them per head, then eq. 18.
    private func expandedAttention(q: [Float], latent: [Float], kRope: [Float], tokens: Int,
                                   cache: LayerKVCache, into output: inout [Float]) {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, ropeDim = config.qkRopeHeadDim
        let qHead = config.qHeadDim, vDim = config.vHeadDim
        let kv = weights.kvBProj.apply(latent, tokens: tokens)  // eqs. 10-11: [k^C | v^C] per head, [tokens, heads·(nope + vDim)]

        // eq. 17: k_t,i = [k^C_t,i ; k^R_t], cached with v^C_t,i.
        cache.keys.reserveCapacity(cache.keys.count + tokens * heads * qHead)
        cache.values.reserveCapacity(cache.values.count + tokens * heads * vDim)
        kv.withUnsafeBufferPointer { kvp in
            kRope.withUnsafeBufferPointer { kr in
                for t in 0..<tokens {
                    for h in 0..<heads {
                        let head = kvp.baseAddress! + (t * heads + h) * (nope + vDim)
                        cache.keys.append(contentsOf: UnsafeBufferPointer(start: head, count: nope))
                        cache.keys.append(contentsOf: UnsafeBufferPointer(start: kr.baseAddress! + t * ropeDim, count: ropeDim))
                        cache.values.append(contentsOf: UnsafeBufferPointer(start: head + nope, count: vDim))
                    }
                }
            }
        }
        cache.appended(tokens)
        let total = cache.count, past = total - tokens

        // eq. 18 for each head i: o_t,i = Σ_j softmax_j(q_t,i·k_j,i · scale) v^C_j,i over j ≤ t.
        var scores = [Float](repeating: 0, count: tokens * total)  // [tokens, total]
        q.withUnsafeBufferPointer { qp in
            cache.keys.withUnsafeBufferPointer { kp in
                cache.values.withUnsafeBufferPointer { vp in
                    scores.withUnsafeMutableBufferPointer { sp in
                        output.withUnsafeMutableBufferPointer { op in
                            for h in 0..<heads {
                                gemm(transposeB: true, m: tokens, n: total, k: qHead, alpha: softmaxScale,
                                     a: qp.baseAddress! + h * qHead, lda: heads * qHead,
                                     b: kp.baseAddress! + h * qHead, ldb: heads * qHead,
                                     c: sp.baseAddress!, ldc: total)
                                causalSoftmax(sp.baseAddress!, tokens: tokens, total: total, past: past)
                                gemm(transposeB: false, m: tokens, n: vDim, k: total,
                                     a: sp.baseAddress!, lda: total, b: vp.baseAddress! + h * vDim, ldb: heads * vDim,
                                     c: op.baseAddress! + h * vDim, ldc: heads * vDim)
                            }
                        }
                    }
                }
            }
        }
    }

    /// The absorbed form: q^C_t,i·k^C_j,i = (W^UK_iᵀ q^C_t,i)·c_KV_j, and
    /// Σ_j p_j v^C_j,i = W^UV_i (Σ_j p_j c_KV_j), so only [c_KV | k^R] is cached.
    private func absorbedAttention(q: [Float], latent: [Float], kRope: [Float], tokens: Int,
                                   cache: LayerKVCache, into output: inout [Float]) {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, ropeDim = config.qkRopeHeadDim
        let qHead = config.qHeadDim, vDim = config.vHeadDim, rank = config.kvLoraRank
        let width = config.latentCacheWidth

        cache.latent.reserveCapacity(cache.latent.count + tokens * width)
        for t in 0..<tokens {
            cache.latent.append(contentsOf: latent[t * rank ..< (t + 1) * rank])
            cache.latent.append(contentsOf: kRope[t * ropeDim ..< (t + 1) * ropeDim])
        }
        cache.appended(tokens)
        let total = cache.count, past = total - tokens

        var queryLatent = [Float](repeating: 0, count: tokens * width)  // [tokens, rank + ropeDim]: [W^UK_iᵀ q^C | q^R]
        var scores = [Float](repeating: 0, count: tokens * total)      // [tokens, total]
        var context = [Float](repeating: 0, count: tokens * rank)      // [tokens, rank]: Σ_j p_j c_KV_j
        q.withUnsafeBufferPointer { qp in
            weights.kvBProj.withRows(0 ..< weights.kvBProj.rows) { wp in
                cache.latent.withUnsafeBufferPointer { cp in
                    queryLatent.withUnsafeMutableBufferPointer { ql in
                        scores.withUnsafeMutableBufferPointer { sp in
                            context.withUnsafeMutableBufferPointer { cx in
                                output.withUnsafeMutableBufferPointer { op in
                                    for h in 0..<heads {
                                        let wUK = wp + h * (nope + vDim) * rank  // [nope, rank]
                                        let wUV = wUK + nope * rank                          // [vDim, rank]
                                        gemm(transposeB: false, m: tokens, n: rank, k: nope,
                                             a: qp.baseAddress! + h * qHead, lda: heads * qHead, b: wUK, ldb: rank,
                                             c: ql.baseAddress!, ldc: width)
                                        for t in 0..<tokens {
                                            for i in 0..<ropeDim {
                                                ql[t * width + rank + i] = qp[(t * heads + h) * qHead + nope + i]
                                            }
                                        }
                                        gemm(transposeB: true, m: tokens, n: total, k: width, alpha: softmaxScale,
                                             a: ql.baseAddress!, lda: width, b: cp.baseAddress!, ldb: width,
                                             c: sp.baseAddress!, ldc: total)
                                        causalSoftmax(sp.baseAddress!, tokens: tokens, total: total, past: past)
                                        gemm(transposeB: false, m: tokens, n: rank, k: total,
                                             a: sp.baseAddress!, lda: total, b: cp.baseAddress!, ldb: width,
                                             c: cx.baseAddress!, ldc: rank)
                                        gemm(transposeB: true, m: tokens, n: vDim, k: rank,
                                             a: cx.baseAddress!, lda: rank, b: wUV, ldb: rank,
                                             c: op.baseAddress! + h * vDim, ldc: heads * vDim)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Row t (position past + t) attends to keys 0 ... past + t: softmax over those, zero after
/// (the original's additive mask of finfo.min gives exactly 0 there; docs/NUMERICS.md item 7).
private func causalSoftmax(_ scores: UnsafeMutablePointer<Float>, tokens: Int, total: Int, past: Int) {
    for t in 0..<tokens {
        let row = scores + t * total
        let visible = past + t + 1
        Elementwise.softmax(row, count: visible)
        for j in visible..<total { row[j] = 0 }
    }
}
