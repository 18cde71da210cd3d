import DSV2Core
import DSV2Formats
import DSV2Kernels

/// A float buffer on an `AlignedBuffer` (64-byte aligned, zero-filled).
struct FloatBuffer {
    let storage: AlignedBuffer
    let pointer: UnsafeMutablePointer<Float>
    let count: Int

    init(_ count: Int) {
        self.count = max(1, count)
        storage = AlignedBuffer(byteCount: self.count * 4)
        pointer = storage.pointer.assumingMemoryBound(to: Float.self)
    }

    var bytes: Int { storage.byteCount }
}

/// Every intermediate buffer of one forward call of `tokens` tokens, allocated once: the engine
/// keeps one for single-token decode (so a decode step allocates nothing here) and makes one per
/// multi-token call (prefill). Shapes are annotated per buffer; the feed-forward ones hold
/// `feedForwardTokens` rows when that is less than `tokens` (the block then runs in parts of
/// that many rows on workspaces of their own, `QuantizedEngine.feedForward`).
final class EngineWorkspace {
    let tokens: Int
    let feedForwardTokens: Int
    let residual: FloatBuffer        // [tokens, hidden]: the residual stream x
    let normed: FloatBuffer          // [tokens, hidden]: the current block's normalised input
    let blockOutput: FloatBuffer     // [tokens, hidden]: attention or feed-forward output
    let hiddenInput: PreparedActivations  // [tokens, hidden]: `normed` quantized once per block

    // Attention
    let query: FloatBuffer           // [tokens, heads·qHeadDim]: per head [q^C | q^R]
    let queryLatent: FloatBuffer?    // [tokens, qLoraRank]: c^Q (q_lora_rank set)
    let queryLatentInput: PreparedActivations?
    let kvA: FloatBuffer             // [tokens, kvLoraRank + qkRopeHeadDim]: [c_KV | k^R] before norm/RoPE
    let cacheRows: FloatBuffer       // [tokens, kvLoraRank + qkRopeHeadDim]: normalised c_KV | rotated k^R
    let cosines: FloatBuffer         // [tokens, qkRopeHeadDim / 2]
    let sines: FloatBuffer           // [tokens, qkRopeHeadDim / 2]
    let headOutputs: FloatBuffer     // [tokens, heads·vHeadDim]: o_t,i of eq. 18
    let headOutputInput: PreparedActivations
    let rowPosition: UnsafeMutablePointer<Int>   // [tokens]: position of each row in its sequence
    let rowSegment: UnsafeMutablePointer<Int>    // [tokens]: the pass segment (sequence) of each row

    // Feed-forward: `tokens` rows, or one when the block runs in parts (`feedForwardTokens`)
    // Dense MLP (if any dense layer)
    let denseGate: FloatBuffer       // [tokens, intermediate]
    let denseUp: FloatBuffer         // [tokens, intermediate]
    let denseInput: PreparedActivations?   // [tokens, intermediate]: silu(gate)·up

    // MoE (if any MoE layer)
    let routerScores: FloatBuffer    // [tokens, nRoutedExperts]
    let routeIndices: UnsafeMutablePointer<Int32>  // [tokens, topK]
    let routeWeights: FloatBuffer    // [tokens, topK]
    let router: ExpertRouter         // holds its own scratch, so routing a decode step allocates nothing
    let expertGate: FloatBuffer      // [tokens·topK, moeIntermediate]: rows grouped by expert
    let expertUp: FloatBuffer        // [tokens·topK, moeIntermediate]
    let expertDown: FloatBuffer      // [tokens·topK, hidden]
    let expertRowOfSlot: UnsafeMutablePointer<Int32>   // [tokens·topK]: row in expertGate/Down of (t, slot)
    /// Single-token calls: silu(gate)·up of each selected expert, one "token" per slot.
    let expertInputDecode: PreparedActivations?     // [topK, moeIntermediate]
    let sharedGate: FloatBuffer      // [tokens, sharedIntermediate]
    let sharedUp: FloatBuffer        // [tokens, sharedIntermediate]
    let sharedDown: FloatBuffer      // [tokens, hidden]
    let sharedInput: PreparedActivations?           // [tokens, sharedIntermediate]

    /// Reused list of the products of one parallel phase (keeps its capacity between calls).
    var products: [MatrixProduct] = []
    private let ownedPointers: [UnsafeMutableRawPointer]

    /// `feedForwardTokens` (if less than `tokens`): rows per part of the feed-forward block,
    /// whose buffers here are then not used (one row each).
    init(tokens: Int, config c: ModelConfig, feedForwardTokens: Int? = nil) {
        self.tokens = tokens
        let parts = (feedForwardTokens ?? tokens) < tokens
        self.feedForwardTokens = parts ? max(1, feedForwardTokens!) : tokens
        let rows = parts ? 1 : tokens   // rows of the feed-forward buffers
        let hidden = c.hiddenSize, heads = c.numAttentionHeads
        residual = FloatBuffer(tokens * hidden)
        normed = FloatBuffer(tokens * hidden)
        blockOutput = FloatBuffer(tokens * hidden)
        hiddenInput = PreparedActivations(columns: hidden, tokens: tokens)

        query = FloatBuffer(tokens * heads * c.qHeadDim)
        if let qLoraRank = c.qLoraRank {
            queryLatent = FloatBuffer(tokens * qLoraRank)
            queryLatentInput = PreparedActivations(columns: qLoraRank, tokens: tokens)
        } else {
            queryLatent = nil
            queryLatentInput = nil
        }
        kvA = FloatBuffer(tokens * c.latentCacheWidth)
        cacheRows = FloatBuffer(tokens * c.latentCacheWidth)
        cosines = FloatBuffer(tokens * c.qkRopeHeadDim / 2)
        sines = FloatBuffer(tokens * c.qkRopeHeadDim / 2)
        headOutputs = FloatBuffer(tokens * heads * c.vHeadDim)
        headOutputInput = PreparedActivations(columns: heads * c.vHeadDim, tokens: tokens)
        rowPosition = .allocate(capacity: tokens)
        rowPosition.initialize(repeating: 0, count: tokens)
        rowSegment = .allocate(capacity: tokens)
        rowSegment.initialize(repeating: 0, count: tokens)

        let hasDense = (0..<c.numHiddenLayers).contains(where: c.isDenseLayer)
        denseGate = FloatBuffer(hasDense ? rows * c.intermediateSize : 1)
        denseUp = FloatBuffer(hasDense ? rows * c.intermediateSize : 1)
        denseInput = hasDense ? PreparedActivations(columns: c.intermediateSize, tokens: rows) : nil

        let experts = c.routedExpertCount, topK = c.expertsPerToken, hasMoE = !c.moeLayers.isEmpty
        let slots = hasMoE ? rows * topK : 1
        routerScores = FloatBuffer(rows * max(1, experts))
        routeIndices = .allocate(capacity: slots)
        routeIndices.initialize(repeating: 0, count: slots)
        routeWeights = FloatBuffer(slots)
        router = ExpertRouter(config: c)
        expertGate = FloatBuffer(hasMoE ? slots * c.moeIntermediateSize : 1)
        expertUp = FloatBuffer(hasMoE ? slots * c.moeIntermediateSize : 1)
        expertDown = FloatBuffer(hasMoE ? slots * hidden : 1)
        expertRowOfSlot = .allocate(capacity: slots)
        expertRowOfSlot.initialize(repeating: 0, count: slots)
        expertInputDecode = hasMoE && tokens == 1 ? PreparedActivations(columns: c.moeIntermediateSize, tokens: topK) : nil
        let sharedWidth = hasMoE ? c.sharedExpertsIntermediateSize : 0
        sharedGate = FloatBuffer(rows * sharedWidth)
        sharedUp = FloatBuffer(rows * sharedWidth)
        sharedDown = FloatBuffer(sharedWidth > 0 ? rows * hidden : 1)
        sharedInput = sharedWidth > 0 ? PreparedActivations(columns: sharedWidth, tokens: rows) : nil
        ownedPointers = [UnsafeMutableRawPointer(routeIndices), UnsafeMutableRawPointer(expertRowOfSlot),
                         UnsafeMutableRawPointer(rowPosition), UnsafeMutableRawPointer(rowSegment)]
        products.reserveCapacity(2 * topK + 8)
    }

    deinit { ownedPointers.forEach { $0.deallocate() } }

    /// Bytes held by this workspace (float buffers and prepared activations).
    var allocatedBytes: Int {
        var total = 0
        for b in [residual, normed, blockOutput, query, kvA, cacheRows, cosines, sines, headOutputs, denseGate, denseUp,
                  routerScores, routeWeights, expertGate, expertUp, expertDown,
                  sharedGate, sharedUp, sharedDown] { total += b.bytes }
        total += queryLatent?.bytes ?? 0
        total += router.scratchBytes
        for p in [hiddenInput, queryLatentInput, headOutputInput, denseInput, expertInputDecode, sharedInput] {
            total += p?.storage.byteCount ?? 0
        }
        return total
    }
}

/// Scratch of the attention core (`EngineLatentAttention.swift`): per participant the working
/// memory of `LatentAttention.block`, the absorbed query of one head and the merged context of
/// one head; per token slot the query qᵀ of all heads and the blocks' partial results. A pass
/// uses a slot per token when its tokens are few (decode: blocks spread over the threads), else
/// a slot per participant (each works through whole tokens).
final class AttentionScratch {
    let participants: Int
    let shape: LatentAttention.Shape
    /// [participants][block scratch | latent (rank) | context (rank)]
    private let work: [FloatBuffer]
    /// [slots][query (width × lanes) | partials (maximumBlocks × partialFloats)]
    private(set) var slots: [FloatBuffer] = []

    init(participants: Int, shape: LatentAttention.Shape) {
        self.participants = participants
        self.shape = shape
        work = (0..<participants).map { _ in FloatBuffer(Self.workFloats(shape)) }
        reserve(slots: participants)
    }

    static func workFloats(_ shape: LatentAttention.Shape) -> Int { shape.scratchFloats + 2 * shape.rank }
    static func slotFloats(_ shape: LatentAttention.Shape) -> Int {
        shape.queryFloats + LatentAttention.maximumBlocks * shape.partialFloats
    }
    /// The most slots a pass uses: one per token up to `phasedTokens`, else one per participant.
    static func maximumSlots(participants: Int) -> Int { max(participants, QuantizedEngine.phasedAttentionTokens(participants: participants)) }

    /// Bytes of the scratch of `participants` once every slot a pass can use exists.
    static func bytes(_ shape: LatentAttention.Shape, participants: Int) -> Int {
        (participants * workFloats(shape) + maximumSlots(participants: participants) * slotFloats(shape)) * 4
    }

    /// Makes at least `count` slots.
    func reserve(slots count: Int) {
        while slots.count < count { slots.append(FloatBuffer(Self.slotFloats(shape))) }
    }

    func blockScratch(_ p: Int) -> UnsafeMutablePointer<Float> { work[p].pointer }
    func latent(_ p: Int) -> UnsafeMutablePointer<Float> { work[p].pointer + shape.scratchFloats }
    func context(_ p: Int) -> UnsafeMutablePointer<Float> { work[p].pointer + shape.scratchFloats + shape.rank }
    func query(_ slot: Int) -> UnsafeMutablePointer<Float> { slots[slot].pointer }
    func partials(_ slot: Int) -> UnsafeMutablePointer<Float> { slots[slot].pointer + shape.queryFloats }

    var allocatedBytes: Int {
        (work + slots).reduce(0) { $0 + $1.bytes }
    }
}
