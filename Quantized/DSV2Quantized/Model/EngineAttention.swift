import DSV2Core
import DSV2Formats
import DSV2Kernels

/// Multi-head Latent Attention in the absorbed form (DeepSeek-V2 paper, arXiv 2405.04434,
/// section 2.1.2) for single-token segments (decode):
///   score_t,j,i = scale · ([W^UK_iᵀ q^C_t,i | q^R_t,i] · [c_KV_j | k^R_j])     (eqs. 16-18 absorbed)
///   o_t,i       = W^UV_i · Σ_j softmax_j(score) · c_KV_j                        (eq. 18, W^UV after)
/// so the cache holds only [c_KV | k^R] (kv_lora_rank + qk_rope_head_dim values) per token.
/// Segments of several tokens (prompts) attend in the expanded form over the same cache
/// (EngineExpandedAttention.swift): for one query the absorbed form reads each cached row once
/// and expands nothing, for a block of queries the expanded form does less arithmetic
/// (docs/NUMERICS.md, "Expanded and absorbed attention").
extension QuantizedEngine {
    /// Attention block of layer `l` for the `ws.tokens` rows of `ws.normed`: each segment's rows
    /// sit at positions past ..< past + rows of its sequence and attend to that sequence's cache
    /// only. Writes u_t (eq. 19) to `ws.blockOutput` and appends the rows' [c_KV | k^R] to their
    /// sequence's cache of this layer.
    func attention(layer l: Int, weights w: EngineAttentionWeights, segments: [PassSegment], ws: EngineWorkspace,
                   tracer: ForwardTracer?) {
        let c = config, tokens = ws.tokens
        let heads = c.numAttentionHeads, nope = c.qkNopeHeadDim, ropeDim = c.qkRopeHeadDim
        let qHead = c.qHeadDim, rank = c.kvLoraRank, width = c.latentCacheWidth

        // The block input, quantized once for every projection that reads it.
        ws.hiddenInput.load(ws.normed.pointer)
        // eq. 9 (c_KV = W^DKV h) and the input of eq. 15 (W^KR h), with the query's first
        // projection in the same parallel phase.
        phase(ws) { products in
            switch w.query {
            case let .plain(qProj):   // [tokens, heads·qHead]
                products.append(MatrixProduct(matrix: qProj, input: ws.hiddenInput, tokens: .all, output: ws.query.pointer))
            case let .lowRank(a, _, _):   // eq. 12: c^Q = W^DQ h, [tokens, qLoraRank]
                products.append(MatrixProduct(matrix: a, input: ws.hiddenInput, tokens: .all, output: ws.queryLatent!.pointer))
            }
            products.append(MatrixProduct(matrix: w.kvAProjWithMQA, input: ws.hiddenInput, tokens: .all, output: ws.kvA.pointer))  // [tokens, rank + ropeDim]
        }
        if case let .lowRank(a, norm, b) = w.query {
            // q_a_layernorm (eps 1e-6), then eqs. 13-14: [q^C | q^R] = W^UQ c^Q, W^QR c^Q.
            Elementwise.rmsNorm(ws.queryLatent!.pointer, rows: tokens, width: a.rows, weight: norm, eps: Self.latentNormEps,
                               into: ws.queryLatent!.pointer)
            ws.queryLatentInput!.load(ws.queryLatent!.pointer)
            phase(ws) { $0.append(MatrixProduct(matrix: b, input: ws.queryLatentInput!, tokens: .all, output: ws.query.pointer)) }
        }

        // kv_a_layernorm normalises the latent only; RoPE rotates k^R (once, shared by all heads)
        // and every head's q^R (docs/NUMERICS.md items 1, 5). Then the rows enter the cache.
        let scratch = attentionScratch.blockScratch(0)  // ≥ ropeDim floats, free until the core runs
        w.kvALayernorm.withUnsafeBufferPointer { norm in
            for segment in segments {
                let cache = segment.sequence.caches[l]
                for t in segment.rows {
                    let source = ws.kvA.pointer + t * width, row = ws.cacheRows.pointer + t * width
                    Elementwise.rmsNorm(source, width: rank, weight: norm.baseAddress!, eps: Self.latentNormEps, into: row)
                    (row + rank).update(from: source + rank, count: ropeDim)
                    let cos = ws.cosines.pointer + t * rotation.half, sin = ws.sines.pointer + t * rotation.half
                    RotaryEmbedding.rotate(row + rank, half: rotation.half, cos: cos, sin: sin, into: row + rank, scratch: scratch)
                    cache.write(row: ws.rowPosition[t], from: row)
                    for h in 0..<heads {
                        let vector = ws.query.pointer + (t * heads + h) * qHead + nope
                        RotaryEmbedding.rotate(vector, half: rotation.half, cos: cos, sin: sin, into: vector, scratch: scratch)
                    }
                }
                cache.commit(segment.past + segment.rows.count)
            }
        }
        if let tracer, tracer.wants(TraceName.kvLatent(l)) {
            var latent = [Float](repeating: 0, count: tokens * rank)
            for t in 0..<tokens {
                for i in 0..<rank { latent[t * rank + i] = ws.cacheRows.pointer[t * width + i] }
            }
            tracer.record(TraceName.kvLatent(l), TracedTensor(shape: [tokens, rank], floats: latent))
        }

        let coreStarted = measuresAttentionTime ? MonotonicClock.nanoseconds() : 0
        // Prompt chunks attend in the expanded form (EngineExpandedAttention.swift); single
        // tokens (decode), and short chunks after a long prefix, in the absorbed core.
        expandedAttention(layer: l, weights: w, segments: segments, ws: ws)
        latentAttentionCore(layer: l, weights: w, segments: segments, ws: ws)
        if measuresAttentionTime { attentionCoreNanoseconds &+= MonotonicClock.nanoseconds() &- coreStarted }

        // eq. 19: u_t = W^O [o_t,1; …; o_t,n_h].
        ws.headOutputInput.load(ws.headOutputs.pointer)
        phase(ws) { $0.append(MatrixProduct(matrix: w.oProj, input: ws.headOutputInput, tokens: .all, output: ws.blockOutput.pointer)) }
    }
}
