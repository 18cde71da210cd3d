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
        let qHead = c.qHeadDim, rank = c.kvLoraRank, width = c.latentCacheWidth, vDim = c.vHeadDim

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
        let scratch = attentionScratch.queryLatent[0].pointer  // ≥ ropeDim floats, free until the core runs
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
        // tokens (decode), and short chunks after a long prefix, in the absorbed core below.
        expandedAttention(layer: l, weights: w, segments: segments, ws: ws)

        // The core, one (token, head) item at a time; items are dealt round-robin to the
        // participants (later tokens see more keys, so contiguous ranges would be unbalanced).
        let items = tokens * heads, participants = pool.threadCount
        let firstCache = segments[0].sequence.caches[l]
        let scale = softmaxScale, cacheType = firstCache.type.weightType, rowBytes = firstCache.rowBytes
        let rowPosition = ws.rowPosition, rowSegment = ws.rowSegment
        let scratchState = attentionScratch
        let query = ws.query.pointer, headOutputs = ws.headOutputs.pointer
        let wUKT = w.kvBProj.wUKT, wUV = w.kvBProj.wUV
        // A local function (not a closure value) so that passing it to the pool allocates no context.
        func core(_ p: Int, cacheBases: UnsafeMutablePointer<UnsafeRawPointer>) {
            let queryLatent = scratchState.queryLatent[p].pointer  // [rank + ropeDim]
            let context = scratchState.context[p].pointer          // [rank]
            let scores = scratchState.scores[p].pointer            // [visible]
            var item = p
            while item < items {
                let t = item / heads, h = item % heads
                if attendsExpanded(segments[rowSegment[t]], w) { item += participants; continue }
                let q = query + (t * heads + h) * qHead
                let cacheBase = cacheBases[rowSegment[t]]
                // Absorb W^UK into the query: W^UK_iᵀ q^C_t,i ([rank]), then append q^R_t,i.
                if nope > 0 {
                    LatentAttentionKernels.matvec(wUKT, rows: h * rank ..< (h + 1) * rank, q, into: queryLatent)
                } else {
                    queryLatent.update(repeating: 0, count: rank)
                }
                (queryLatent + rank).update(from: q + nope, count: ropeDim)
                // Causal: position p sees its sequence's cached rows 0 ... p (NUMERICS.md item 7).
                let visible = rowPosition[t] + 1
                for j in 0..<visible {
                    scores[j] = LatentAttentionKernels.dot(cacheBase + j * rowBytes, queryLatent, columns: width, type: cacheType) * scale
                }
                Elementwise.softmax(scores, count: visible)
                LatentAttentionKernels.weightedRowSum(base: cacheBase, rowBytes: rowBytes, count: visible, weights: scores,
                                                      columns: rank, type: cacheType, into: context)
                // W^UV_i after attention: o_t,i = W^UV_i (Σ_j p_j c_KV_j), [vDim].
                LatentAttentionKernels.matvec(wUV, rows: h * vDim ..< (h + 1) * vDim, context,
                                              into: headOutputs + (t * heads + h) * vDim)
                item += participants
            }
        }
        // Bytes the core streams: every item reads its visible cache rows (and its W^UK/W^UV rows).
        var coreBytes = 0
        for segment in segments where !attendsExpanded(segment, w) {
            let rows = segment.rows.count
            coreBytes += rows * heads * ((segment.past + (rows + 1) / 2) * rowBytes + (wUKT.streamedBytes + wUV.streamedBytes) / heads)
        }
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: segments.count) { buffer in
            let cacheBases = buffer.baseAddress!
            for (s, segment) in segments.enumerated() { (cacheBases + s).initialize(to: segment.sequence.caches[l].base) }
            func participant(_ p: Int) { core(p, cacheBases: cacheBases) }
            if coreBytes == 0 {
                return
            } else if participants == 1 || items == 1 || coreBytes < Self.parallelThresholdBytes {
                for p in 0..<min(participants, items) { participant(p) }
            } else {
                pool.run(participant)
            }
        }

        if measuresAttentionTime { attentionCoreNanoseconds &+= MonotonicClock.nanoseconds() &- coreStarted }

        // eq. 19: u_t = W^O [o_t,1; …; o_t,n_h].
        ws.headOutputInput.load(headOutputs)
        phase(ws) { $0.append(MatrixProduct(matrix: w.oProj, input: ws.headOutputInput, tokens: .all, output: ws.blockOutput.pointer)) }
    }
}
