import DSV2Core
import DSV2Formats
import DSV2Kernels

extension ModelConfig {
    /// The dimensions of the attention core over the latent cache.
    var latentAttentionShape: LatentAttention.Shape {
        LatentAttention.Shape(heads: numAttentionHeads, rank: kvLoraRank, width: latentCacheWidth)
    }
}

extension QuantizedEngine {
    /// Passes of at most this many tokens (two per participant) spread each token's cache blocks
    /// over the threads (three parallel phases per layer); longer passes give each participant
    /// whole tokens (one phase). The numbers are the same either way.
    static func phasedAttentionTokens(participants: Int) -> Int { 2 * participants }

    /// The attention core of layer `l` in the absorbed form (see `EngineAttention.swift`) for
    /// every row of the pass whose segment does not attend expanded (`attendsExpanded`), from the rotated queries in `ws.query` to the head outputs
    /// o_t,i = W^UV_i · Σ_j softmax_j(score) c_KV_j in `ws.headOutputs`. The rows' own
    /// [c_KV | k^R] are already in their sequences' caches.
    ///
    /// Per token, in three steps:
    ///   1. absorb: q̃_i = [W^UK_iᵀ q^C_i | q^R_i] · softmax scale for every head i, stored
    ///      transposed (qᵀ [width, lanes]) so that the score product has the heads as lanes;
    ///   2. blocks: the token's visible cache rows in blocks (`LatentAttention`): every row is
    ///      read once for all heads, and each block yields per-head partial softmax results;
    ///   3. merge per head (log-sum-exp over the blocks, in block order), then W^UV_i.
    /// A decode step (few tokens) runs each step as a parallel phase over (token, head) or
    /// (token, block) items, so the blocks of one long context are shared by the threads
    /// (flash-decoding); a prefill gives each participant whole tokens. Both compute every
    /// value with the same operations, so the results depend neither on the thread count nor on
    /// the pass: an absorbed multi-token pass equals token-by-token decode bit for bit.
    func latentAttentionCore(layer l: Int, weights w: EngineAttentionWeights, segments: [PassSegment], ws: EngineWorkspace) {
        // The rows of segments that attend in the absorbed form (all of them in a decode step).
        withUnsafeTemporaryAllocation(of: Int.self, capacity: ws.tokens) { buffer in
            var count = 0
            for segment in segments where !attendsExpanded(segment, w) {
                for t in segment.rows { buffer[count] = t; count += 1 }
            }
            if count > 0 {
                latentAttentionCore(layer: l, weights: w, segments: segments, ws: ws,
                                    rows: UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        }
    }

    private func latentAttentionCore(layer l: Int, weights w: EngineAttentionWeights, segments: [PassSegment],
                                     ws: EngineWorkspace, rows: UnsafeBufferPointer<Int>) {
        let c = config, tokens = rows.count, heads = c.numAttentionHeads
        let nope = c.qkNopeHeadDim, ropeDim = c.qkRopeHeadDim, qHead = c.qHeadDim, rank = c.kvLoraRank, vDim = c.vHeadDim
        let scratch = attentionScratch, shape = scratch.shape, lanes = shape.lanes
        let firstCache = segments[0].sequence.caches[l]
        let rowBytes = firstCache.rowBytes, products = KernelTable.native.latentAttention(firstCache.type.weightType)
        let scale = softmaxScale, rowPosition = ws.rowPosition, rowSegment = ws.rowSegment
        let query = ws.query.pointer, headOutputs = ws.headOutputs.pointer
        let wUKT = w.kvBProj.wUKT, wUV = w.kvBProj.wUV
        let participants = pool.threadCount
        let phased = tokens <= Self.phasedAttentionTokens(participants: participants)
        scratch.reserve(slots: phased ? tokens : participants)

        withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: segments.count) { buffer in
            let cacheBases = buffer.baseAddress!
            for (s, segment) in segments.enumerated() { (cacheBases + s).initialize(to: segment.sequence.caches[l].base) }

            // Below, `i` is an index into `rows` and `t = rows[i]` the pass row.
            // Step 1 for head h of row rows[i] into slot `slot` (participant p's scratch).
            func absorb(_ i: Int, _ h: Int, slot: Int, _ p: Int) {
                let t = rows[i], q = query + (t * heads + h) * qHead, latent = scratch.latent(p), qT = scratch.query(slot)
                if nope > 0 {
                    LatentAttentionKernels.matvec(wUKT, rows: h * rank ..< (h + 1) * rank, q, into: latent)
                } else {
                    latent.update(repeating: 0, count: rank)
                }
                for i in 0..<rank { qT[i * lanes + h] = latent[i] * scale }
                for i in 0..<ropeDim { qT[(rank + i) * lanes + h] = q[nope + i] * scale }
            }
            // Step 2, block b of row rows[i].
            func block(_ i: Int, _ b: Int, slot: Int, _ p: Int) {
                let t = rows[i], visible = rowPosition[t] + 1, blockRows = LatentAttention.blockRows(visible: visible)
                LatentAttention.block(products, shape: shape, query: scratch.query(slot), rows: cacheBases[rowSegment[t]],
                                      rowBytes: rowBytes, range: b * blockRows ..< min(visible, (b + 1) * blockRows),
                                      scratch: scratch.blockScratch(p), into: scratch.partials(slot) + b * shape.partialFloats)
            }
            // Step 3, head h of row rows[i].
            func merge(_ i: Int, _ h: Int, slot: Int, _ p: Int) {
                let t = rows[i], context = scratch.context(p)
                LatentAttention.merge(shape: shape, partials: scratch.partials(slot),
                                      blocks: LatentAttention.blockCount(visible: rowPosition[t] + 1), head: h, into: context)
                LatentAttentionKernels.matvec(wUV, rows: h * vDim ..< (h + 1) * vDim, context, into: headOutputs + (t * heads + h) * vDim)
            }

            let headBytes = (wUKT.streamedBytes + wUV.streamedBytes) / heads
            if phased {
                // Items dealt round-robin; each phase runs in parallel when its work is worth a region.
                let headItems = tokens * heads
                func eachHead(_ p: Int, _ body: (Int, Int, Int, Int) -> Void) {
                    var item = p
                    while item < headItems { body(item / heads, item % heads, item / heads, p); item += participants }
                }
                runPhase(items: headItems, bytes: tokens * wUKT.streamedBytes) { p in eachHead(p, absorb) }
                var blockItems = 0
                var visibleRows = 0
                for t in rows {
                    blockItems += LatentAttention.blockCount(visible: rowPosition[t] + 1)
                    visibleRows += rowPosition[t] + 1
                }
                runPhase(items: blockItems, bytes: visibleRows * rowBytes * lanes / LatentAttentionKernels.headLanes) { p in
                    // Item k: block k − first(i) of the row i whose blocks contain it.
                    var item = p, i = 0, first = 0
                    while item < blockItems {
                        while item >= first + LatentAttention.blockCount(visible: rowPosition[rows[i]] + 1) {
                            first += LatentAttention.blockCount(visible: rowPosition[rows[i]] + 1)
                            i += 1
                        }
                        block(i, item - first, slot: i, p)
                        item += participants
                    }
                }
                runPhase(items: headItems, bytes: tokens * wUV.streamedBytes) { p in eachHead(p, merge) }
            } else {
                var bytes = 0
                for t in rows { bytes += (rowPosition[t] + 1) * rowBytes + heads * headBytes }
                runPhase(items: tokens, bytes: bytes) { p in
                    var i = p
                    while i < tokens {
                        for h in 0..<heads { absorb(i, h, slot: p, p) }
                        for b in 0..<LatentAttention.blockCount(visible: rowPosition[rows[i]] + 1) { block(i, b, slot: p, p) }
                        for h in 0..<heads { merge(i, h, slot: p, p) }
                        i += participants
                    }
                }
            }
        }
    }

    /// Runs `participant(p)` for every participant, in parallel when there are several items and
    /// the work streams at least `parallelThresholdBytes`, else one after the other here.
    @inline(__always)
    private func runPhase(items: Int, bytes: Int, _ participant: (Int) -> Void) {
        if pool.threadCount == 1 || items == 1 || bytes < Self.parallelThresholdBytes {
            for p in 0..<min(pool.threadCount, items) { participant(p) }
        } else {
            pool.run(participant)
        }
    }
}
