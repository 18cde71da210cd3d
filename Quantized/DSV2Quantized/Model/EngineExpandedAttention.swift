import DSV2Core
import DSV2Formats
import DSV2Kernels

/// Multi-head Latent Attention in the expanded form (DeepSeek-V2 paper, arXiv 2405.04434, eqs.
/// 10-11 and 17-18 as written) for the segments of a pass that hold several tokens — a prompt,
/// or a chunk of one. The latent rows of the sequence's cache (its prefix and the segment's own
/// rows, which `attention` has just appended) are up-projected to every head's keys and values,
///   [k^C_j,i | v^C_j,i] = W^UKV_i c_KV_j     (kv_b_proj, one mat-mat over all heads)
///   k_j,i = [k^C_j,i ; k^R_j]
/// and each head's queries attend to them by tiled products with an online softmax
/// (`ExpandedAttentionKernels`): no score matrix, causal, o_t,i into `ws.headOutputs`. Only the
/// latent is cached, as for decode; the keys and values live for one block of keys.
///
/// Why (docs/NUMERICS.md, "Expanded and absorbed attention", has the figures): per (query, key)
/// pair and head the absorbed form costs 2·kv_lora_rank + qk_rope multiply-adds (1088 at the
/// real shapes), the expanded one qk_nope + qk_rope + v_head = 320, after an up-projection of
/// kv_lora_rank·(qk_nope + v_head) per key and head that runs on the integer kernels and is
/// shared by the 16-row query blocks of a chunk. Decode (one query per sequence) stays absorbed.
///
/// Work, per block of at most `keyBlock` keys (bounded scratch at any context): (1) the
/// latents are quantized for the kernels and k^R widened, (2) one product up-projects them,
/// (3) every (16-row query block, head) item attends to them, a 64-key tile at a time. Items
/// are dealt round-robin to the participants and each is computed whole by one thread; a
/// query's result depends only on its position and the keys (tiles start at multiples of 64,
/// every query lane runs the same operations), so it is the same for any thread count,
/// chunking of the prompt, key block, or batch.
extension QuantizedEngine {
    /// Keys per tile of the attention kernel; key blocks are multiples of it.
    static let expandedKeyTile = 64

    /// Whether `segment` attends in the expanded form: whenever it holds several rows (a prompt,
    /// or a piece of one); a single row (a decode step) attends absorbed.
    ///
    /// The rule depends on nothing but the row count, not on a cost estimate from the cached
    /// prefix, so that a prompt's logits depend only on the prompt: an expanded row's result
    /// depends only on its position and the keys, so a prompt run whole, in chunks of any size
    /// ≥ 2, batched with others, or after a reused cached prefix (the server) gives the same
    /// bits. Callers therefore never feed a prompt of two or more tokens with a one-row piece
    /// (`prefillPieces`). The price: a short piece after a long cached prefix up-projects the
    /// whole prefix (docs/NUMERICS.md, "Expanded and absorbed attention", has the costs).
    func attendsExpanded(_ segment: PassSegment, _ w: EngineAttentionWeights) -> Bool {
        segment.rows.count > 1
    }

    /// The expanded attention of every segment that `attendsExpanded`.
    func expandedAttention(layer l: Int, weights w: EngineAttentionWeights, segments: [PassSegment], ws: EngineWorkspace) {
        for segment in segments where attendsExpanded(segment, w) {
            expandedAttention(layer: l, upProjection: w.kvBProj.upProjection, segment: segment, ws: ws)
        }
    }

    private func expandedAttention(layer l: Int, upProjection: QuantizedMatrix, segment: PassSegment, ws: EngineWorkspace) {
        let c = config, heads = c.numAttentionHeads, nope = c.qkNopeHeadDim, rope = c.qkRopeHeadDim
        let vDim = c.vHeadDim, rank = c.kvLoraRank, qHead = c.qHeadDim, width = c.latentCacheWidth
        let projectedWidth = heads * (nope + vDim)
        let lanes = ExpandedAttentionKernels.lanes, tile = Self.expandedKeyTile
        let cache = segment.sequence.caches[l]
        let keysTotal = segment.past + segment.rows.count
        let firstRow = segment.rows.lowerBound, rowCount = segment.rows.count
        let blocks = (rowCount + lanes - 1) / lanes, items = blocks * heads
        let scratch = expandedScratch(keys: keysTotal, items: items)
        let participants = pool.threadCount
        let stateFloats = ExpandedAttentionKernels.stateFloats(vDim: vDim)
        let cacheBase = cache.base, rowBytes = cache.rowBytes, cacheType = cache.type.weightType
        let query = ws.query.pointer, headOutputs = ws.headOutputs.pointer, rowPosition = ws.rowPosition
        let scale = softmaxScale
        let projected = scratch.projected.pointer, ropeKeys = scratch.ropeKeys.pointer, states = scratch.states.pointer
        let packed = scratch.packed.pointer, packedStride = ExpandedAttentionScratch.packedStride(c)

        // q8/q4 weights multiply int8 activations: each latent goes in as two rows, its int8
        // quantization and what that leaves over (quantized again), whose products add up to
        // the product of the latent within ~2^-16 of its block maximum (one row alone: 2^-8,
        // more than the f16 cache's rounding). Float weights take the latent as it is.
        let rowsPerKey = upProjection.type.isQuantized ? 2 : 1

        var k0 = 0
        while k0 < keysTotal {
            let k1 = min(keysTotal, k0 + scratch.keyBlock), count = k1 - k0
            // (1) Latents of keys k0 ..< k1 prepared for the up-projection; k^R widened.
            let latents = scratch.latents
            func prepare(_ p: Int) {
                let row = scratch.rows[p].pointer, residual = row + width
                var j = k0 + p
                while j < k1 {
                    ExpandedAttentionKernels.widen(cacheBase + j * rowBytes, count: width, type: cacheType, into: row)
                    latents.loadToken(rowsPerKey * (j - k0), from: row)
                    if rowsPerKey == 2 {
                        ExpandedAttentionKernels.quantizationResidual(row, count: rank, into: residual)
                        latents.loadToken(2 * (j - k0) + 1, from: residual)
                    }
                    (ropeKeys + (j - k0) * rope).update(from: row + rank, count: rope)
                    j += participants
                }
            }
            runParticipants(work: count * rowBytes * 4, prepare)

            // (2) [k^C | v^C] of every head for every key: [rowsPerKey·count, heads·(nope + vDim)].
            let input = latents.prefix(rowsPerKey * count)
            phase(ws) { $0.append(MatrixProduct(matrix: upProjection, input: input, tokens: .all, output: projected)) }
            // Each head's [k^C | v^C] rows gathered (and a latent's two rows summed) into one
            // array per head: keys `packedStride` floats apart, not a power of two, so the rows a
            // tile reads do not share cache sets.
            let headWidth = nope + vDim, keyBlock = scratch.keyBlock
            parallelFor(count, bytes: count * rowsPerKey * projectedWidth * 4) { range in
                for j in range {
                    let source = projected + rowsPerKey * j * projectedWidth
                    for h in 0..<heads {
                        let from = source + h * headWidth, to = packed + (h * keyBlock + j) * packedStride
                        if rowsPerKey == 2 {
                            for i in 0..<headWidth { to[i] = from[i] + from[projectedWidth + i] }
                        } else {
                            to.update(from: from, count: headWidth)
                        }
                    }
                }
            }

            // (3) Item i: query block i / heads (16 rows), head i % heads.
            func attend(_ p: Int) {
                let queriesT = scratch.queries[p].pointer, scores = scratch.scores[p].pointer
                var item = p
                while item < items {
                    defer { item += participants }
                    let block = item / heads, h = item % heads
                    let first = firstRow + block * lanes, rows = min(lanes, firstRow + rowCount - first)
                    let lastPosition = rowPosition[first + rows - 1]
                    if lastPosition < k0 { continue }   // finished in an earlier key block
                    // Qᵀ [qHead][16]; a lane past the segment's rows repeats the last position with q = 0.
                    var positions = SIMD16<Float>(repeating: Float(lastPosition))
                    for lane in 0..<lanes {
                        if lane < rows {
                            let q = query + ((first + lane) * heads + h) * qHead
                            for d in 0..<qHead { queriesT[d * lanes + lane] = q[d] }
                            positions[lane] = Float(rowPosition[first + lane])
                        } else {
                            for d in 0..<qHead { queriesT[d * lanes + lane] = 0 }
                        }
                    }
                    let state = states + item * stateFloats
                    if k0 == 0 { ExpandedAttentionKernels.resetState(state, vDim: vDim) }
                    let end = min(k1, lastPosition + 1)
                    var j0 = k0
                    while j0 < end {
                        let key = packed + (h * keyBlock + j0 - k0) * packedStride
                        ExpandedAttentionKernels.attend(
                            queriesT: queriesT, positions: positions, nope: nope, rope: rope,
                            keys: key, keyStride: packedStride, ropeKeys: ropeKeys + (j0 - k0) * rope, ropeStride: rope,
                            values: key + nope, valueStride: packedStride, vDim: vDim,
                            firstKey: j0, count: min(tile, end - j0), scale: scale, scores: scores, state: state)
                        j0 += tile
                    }
                    if end == lastPosition + 1 {
                        for lane in 0..<rows {
                            ExpandedAttentionKernels.finish(state, lane: lane, vDim: vDim,
                                                            into: headOutputs + ((first + lane) * heads + h) * vDim)
                        }
                    }
                }
            }
            // Keys and values read per item: the visible keys of this block.
            runParticipants(work: items * count * (qHead + vDim) * 4, attend)
            k0 = k1
        }
    }

    /// `work(p)` for every participant p: on the pool when `work` bytes are worth a parallel
    /// region, else one after another on this thread (the same partition, the same results).
    private func runParticipants(work: Int, _ body: (Int) -> Void) {
        if pool.threadCount == 1 || work < Self.parallelThresholdBytes {
            for p in 0..<pool.threadCount { body(p) }
        } else {
            pool.run(body)
        }
    }

    /// The scratch for a segment over `keys` keys with `items` (query block, head) items.
    private func expandedScratch(keys: Int, items: Int) -> ExpandedAttentionScratch {
        let tile = Self.expandedKeyTile
        let wanted = min(expandedKeyBlockLimit, (keys + tile - 1) / tile * tile)
        if let scratch = expandedScratch, scratch.participants == pool.threadCount,
           scratch.keyBlock >= wanted, scratch.keyBlock <= expandedKeyBlockLimit {
            scratch.reserve(items: items)
            return scratch
        }
        // Grow by doubling (a prefill's context grows chunk by chunk).
        var keyBlock = min(expandedKeyBlockLimit, max(tile, expandedScratch?.keyBlock ?? tile))
        while keyBlock < wanted { keyBlock = min(expandedKeyBlockLimit, keyBlock * 2) }
        let scratch = ExpandedAttentionScratch(config: config, participants: pool.threadCount, keyBlock: keyBlock,
                                               items: max(items, expandedScratch?.stateItems ?? 0))
        expandedScratch = scratch
        return scratch
    }
}

/// Buffers of the expanded attention, made at the first multi-token pass and kept (every layer
/// and chunk of a prefill reuses them); shapes per buffer.
final class ExpandedAttentionScratch {
    let participants: Int
    /// Keys up-projected at a time (a multiple of the key tile).
    let keyBlock: Int
    let latents: PreparedActivations    // [2·keyBlock, kvLoraRank]: per key its latent (and residual)
    let projected: FloatBuffer          // [2·keyBlock, heads·(qkNope + vHead)]: per head [k^C | v^C]
    let packed: FloatBuffer             // [heads, keyBlock, packedStride]: per head and key [k^C | v^C]
    let ropeKeys: FloatBuffer           // [keyBlock, qkRope]
    private(set) var states: FloatBuffer   // [stateItems, ExpandedAttentionKernels.stateFloats]
    private(set) var stateItems: Int
    let queries: [FloatBuffer]          // [participants][qHeadDim·16]: a query block transposed
    let scores: [FloatBuffer]           // [participants][keyTile·16]
    let rows: [FloatBuffer]             // [participants][kvLoraRank + qkRope + kvLoraRank]: a cached row as floats, its residual
    private let stateFloats: Int

    /// Keys per block when nothing smaller is asked: the projected keys and values stay near
    /// 16 MB (512 keys for V2-Lite's 16 heads, 64 for V2's 128), at least one tile.
    static func defaultKeyBlockLimit(config c: ModelConfig) -> Int {
        let tile = QuantizedEngine.expandedKeyTile
        let perKey = 2 * c.numAttentionHeads * (c.qkNopeHeadDim + c.vHeadDim) * 4
        return max(tile, (16 << 20) / max(1, perKey) / tile * tile)
    }

    /// Floats from one packed key to the next: [k^C | v^C] and 16 more, so that rows are not a
    /// power of two apart (256 floats for the real shapes would put a tile's rows in the same
    /// cache sets).
    static func packedStride(_ c: ModelConfig) -> Int { c.qkNopeHeadDim + c.vHeadDim + 16 }

    /// Floats of each buffer (the per-participant ones for one participant).
    private struct Sizes {
        let projected: Int, packed: Int, ropeKeys: Int, state: Int, queries: Int, scores: Int, row: Int
        init(_ c: ModelConfig, keyBlock: Int) {
            let lanes = ExpandedAttentionKernels.lanes
            projected = 2 * keyBlock * c.numAttentionHeads * (c.qkNopeHeadDim + c.vHeadDim)
            packed = c.numAttentionHeads * keyBlock * packedStride(c)
            ropeKeys = keyBlock * c.qkRopeHeadDim
            state = ExpandedAttentionKernels.stateFloats(vDim: c.vHeadDim)
            queries = c.qHeadDim * lanes
            scores = QuantizedEngine.expandedKeyTile * lanes
            row = c.latentCacheWidth + c.kvLoraRank
        }
    }

    init(config c: ModelConfig, participants: Int, keyBlock: Int, items: Int) {
        let sizes = Sizes(c, keyBlock: keyBlock)
        self.participants = participants
        self.keyBlock = keyBlock
        latents = PreparedActivations(columns: c.kvLoraRank, tokens: 2 * keyBlock)
        projected = FloatBuffer(sizes.projected)
        packed = FloatBuffer(sizes.packed)
        ropeKeys = FloatBuffer(sizes.ropeKeys)
        stateFloats = sizes.state
        stateItems = max(1, items)
        states = FloatBuffer(stateItems * stateFloats)
        queries = (0..<participants).map { _ in FloatBuffer(sizes.queries) }
        scores = (0..<participants).map { _ in FloatBuffer(sizes.scores) }
        rows = (0..<participants).map { _ in FloatBuffer(sizes.row) }
    }

    /// Bytes of the scratch for passes of at most `rows` tokens over `keys` keys, without
    /// allocating it (memory estimates); 0 when no pass has several tokens.
    static func bytes(config c: ModelConfig, participants: Int, rows: Int, keys: Int) -> Int {
        guard rows > 1 else { return 0 }
        let tile = QuantizedEngine.expandedKeyTile
        let keyBlock = min(defaultKeyBlockLimit(config: c), (keys + tile - 1) / tile * tile)
        let items = (rows + ExpandedAttentionKernels.lanes - 1) / ExpandedAttentionKernels.lanes * c.numAttentionHeads
        let sizes = Sizes(c, keyBlock: keyBlock)
        return 2 * keyBlock * PreparedActivations(columns: c.kvLoraRank, tokens: 1).storage.byteCount
            + 4 * (sizes.projected + sizes.packed + sizes.ropeKeys + items * sizes.state + participants * (sizes.queries + sizes.scores + sizes.row))
    }

    func reserve(items: Int) {
        guard items > stateItems else { return }
        stateItems = items
        states = FloatBuffer(items * stateFloats)
    }

    var allocatedBytes: Int {
        latents.storage.byteCount + projected.bytes + packed.bytes + ropeKeys.bytes + states.bytes
            + (queries + scores + rows).reduce(0) { $0 + $1.bytes }
    }
}
