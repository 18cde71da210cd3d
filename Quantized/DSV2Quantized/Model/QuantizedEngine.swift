import Foundation
import DSV2Core
import DSV2Formats
import DSV2Kernels

/// The fast engine: DeepSeek-V2 with quantized weights (any `WeightType` per tensor, chosen by a
/// `QuantizationPolicy` preset), SIMD kernels on a persistent `WorkerPool`, MLA over a
/// compressed latent KV cache (expanded for prompts, absorbed for decode), and only the selected
/// experts run. Reports the same trace names as the reference (`TraceName`) through the same
/// `ForwardTracer`.
///
/// Per layer (pre-norm, residual adds), as `ReferenceModel`:
///   a = x + MLA(input_layernorm(x))            → `kv_latent.l`, `attn.l`
///   y = a + FFN(post_attention_layernorm(a))   → `router.l.*`, `moe.l`, `hidden.{l+1}`
///
/// Determinism: every output element of every product is computed whole by one thread; the
/// expanded attention's (query block, head) items likewise, and the absorbed attention splits a
/// token's cache rows into blocks fixed by the context length alone, merged in order; so results
/// are bit-identical for any thread count. A pass of several tokens attends in the expanded form
/// (`EngineExpandedAttention.swift`), a single token in the absorbed form (`EngineAttention.swift`,
/// `EngineLatentAttention.swift`): prefill equals token-by-token decode within rounding, not bit
/// for bit (docs/NUMERICS.md).
public final class QuantizedEngine: LanguageModel {
    public var config: ModelConfig { weights.config }
    public let weights: EngineWeights
    public let kvCacheType: KVCacheType
    /// The sequence the `LanguageModel` methods run on (`forward(tokens:)`, `resetCache`, …).
    public let sequence: SequenceState
    public var cachedTokens: Int { sequence.cachedTokens }
    public var threadCount: Int { pool.threadCount }

    private(set) var pool: WorkerPool
    let rotation: RotaryEmbedding
    let softmaxScale: Float
    private(set) var attentionScratch: AttentionScratch
    let decodeWorkspace: EngineWorkspace
    /// The largest multi-token workspace made so far (bytes), for `peakScratchBytes`.
    var largestPrefillWorkspaceBytes = 0
    /// The last batch workspace, kept while batches keep the same token count (a server's
    /// steady decode steps), so a step does not allocate and zero-fill it again.
    var batchWorkspace: EngineWorkspace?
    /// Scratch of the expanded attention of multi-token passes, made at the first one.
    var expandedScratch: ExpandedAttentionScratch?
    /// Most keys the expanded attention up-projects at a time (tests lower it to cross blocks;
    /// results do not depend on it).
    var expandedKeyBlockLimit: Int
    /// Cache capacity a new sequence starts with (tokens; it doubles when exceeded).
    let initialContext: Int
    /// Longest run of tokens one pass works on: a longer prompt (without a tracer) runs as
    /// consecutive chunks over the cache (`prefillPiece`), the same results bit for bit (every
    /// chunk attends in the expanded form, where a query's result depends only on its position
    /// and the cache). It bounds the prefill workspace, while a chunk still has enough tokens per
    /// routed expert (≈ chunk × topK / experts) to read each expert's weights once for many
    /// rows, and the expanded attention up-projects the cached prefix once per chunk. At least
    /// 2. Tests lower it to exercise the chunk boundaries.
    public var prefillChunkTokens = QuantizedEngine.defaultPrefillChunkTokens {
        didSet { prefillChunkTokens = max(2, prefillChunkTokens) }
    }

    /// Tokens to feed in the next piece of a prompt that has `remaining` tokens left, about
    /// `budget` (≥ 2) at most: never a single row while two or more remain, because a one-row
    /// pass attends in the absorbed form and its results would then depend on how the prompt was
    /// cut (`attendsExpanded`). A piece may exceed `budget` by one row for that.
    public static func prefillPiece(remaining: Int, budget: Int) -> Int {
        guard remaining > 1 else { return remaining }
        var take = min(max(2, budget), remaining)
        if remaining - take == 1 { take += take > 2 ? -1 : 1 }
        return take
    }

    /// A check the weights must pass before any result is returned, still running when the
    /// engine was built (a raw container's checksums: `Model`, docs/LIMITS.md). Each forward
    /// waits for it before returning until it has passed once (`withWeightCheck`).
    public var pendingWeightCheck: (() throws -> Void)?

    /// Whether passes add the wall time of their attention cores (the products over the latent
    /// cache, from the absorbed query to W^UV; not the projections) to `attentionCoreNanoseconds`.
    /// Off unless asked (`dsv2 bench` sets it): it costs two clock reads per layer and pass.
    public var measuresAttentionTime = false
    /// Attention-core time summed while `measuresAttentionTime` is set.
    public internal(set) var attentionCoreNanoseconds: UInt64 = 0

    /// q_a_layernorm and kv_a_layernorm use a hard-coded eps (docs/NUMERICS.md item 6).
    static let latentNormEps: Float = 1e-6

    /// The most worker threads an engine runs: a requested count above it is clamped, so no
    /// `--threads` value can create threads until the system refuses (a precondition failure).
    /// Far above any core count this engine is meant for, and results do not depend on it.
    public static let maximumThreadCount = 1024

    /// - Parameters:
    ///   - threads: participants of the worker pool (the caller included), at most
    ///     `maximumThreadCount`; results do not depend on it.
    ///   - kvCacheType: element type of the latent cache (f16 by default: 2 bytes per value).
    ///   - initialContext: tokens of cache allocated up front (the cache doubles when exceeded).
    public init(weights: EngineWeights, threads: Int = WorkerPool.defaultThreadCount,
                kvCacheType: KVCacheType = .f16, initialContext: Int = QuantizedEngine.initialCacheTokens) {
        self.weights = weights
        self.kvCacheType = kvCacheType
        let config = weights.config
        pool = WorkerPool(threadCount: min(max(1, threads), Self.maximumThreadCount))
        rotation = RotaryEmbedding(config: config)
        softmaxScale = Float(config.softmaxScale)
        let context = min(max(1, initialContext), config.maxPositionEmbeddings)
        self.initialContext = context
        sequence = SequenceState(config: config, type: kvCacheType, capacity: context)
        attentionScratch = AttentionScratch(participants: pool.threadCount, shape: config.latentAttentionShape)
        decodeWorkspace = EngineWorkspace(tokens: 1, config: config)
        expandedKeyBlockLimit = ExpandedAttentionScratch.defaultKeyBlockLimit(config: config)
    }

    /// Loads from any `WeightSource` (a `.dsv2` container, or `QuantizingSource` over a Hugging
    /// Face folder): tensors are used in their stored types.
    public convenience init(source: WeightSource, threads: Int = WorkerPool.defaultThreadCount,
                            kvCacheType: KVCacheType = .f16) throws {
        self.init(weights: try EngineWeightLoader.load(from: source), threads: threads, kvCacheType: kvCacheType)
    }

    /// Replaces the worker pool with one of `threads` participants (benchmarks sweep it; the
    /// results do not change). The cache is kept.
    public func setThreadCount(_ threads: Int) {
        let count = min(max(1, threads), Self.maximumThreadCount)
        guard count != pool.threadCount else { return }
        pool = WorkerPool(threadCount: count)
        attentionScratch = AttentionScratch(participants: count, shape: config.latentAttentionShape)
    }

    // MARK: Figures for benchmarks

    /// Bytes of latent cache per token per layer: (kv_lora_rank + qk_rope_head_dim) × element
    /// size (576 × 2 = 1152 for the real shapes in f16).
    public var kvCacheBytesPerTokenPerLayer: Int { config.latentCacheWidth * kvCacheType.bytesPerValue }
    /// Bytes of latent cache per token over all layers.
    public var kvCacheBytesPerToken: Int { kvCacheBytesPerTokenPerLayer * config.numHiddenLayers }
    /// Bytes of cache allocated now (capacity, not only the cached tokens).
    public var kvCacheAllocatedBytes: Int { sequence.allocatedBytes }
    /// Bytes of weights one decode step reads (see `EngineWeights.bytesReadPerToken`).
    public var weightBytesReadPerToken: Int { weights.bytesReadPerToken }
    /// Bytes of all weights held.
    public var weightBytesResident: Int { weights.residentBytes }
    /// Scratch memory: the decode workspace, the attention scratch, and the largest prefill
    /// workspace made so far (freed after its call; a peak, not resident).
    public var peakScratchBytes: Int {
        decodeWorkspace.allocatedBytes + attentionScratch.allocatedBytes + largestPrefillWorkspaceBytes
            + (expandedScratch?.allocatedBytes ?? 0)
    }

    // MARK: LanguageModel

    public func resetCache() {
        sequence.reset()
    }

    public func truncateCache(to count: Int) throws {
        try sequence.truncate(to: count)
    }

    public func forward(tokens: [Int32], logits rows: LogitsRows, tracer: ForwardTracer?) throws -> [Float] {
        if pendingWeightCheck != nil { return try withWeightCheck { try forward(tokens: tokens, logits: rows, tracer: tracer) } }
        try checkForwardInput(tokens)
        let chunk = prefillChunkTokens
        // A tracer records each name once per call with all tokens, so traced calls run whole.
        guard tracer == nil, tokens.count > chunk else {
            return pass(tokens[...], logits: rows, workspace: workspace(tokens: tokens.count, whole: tracer != nil), tracer: tracer)
        }
        var ws = workspace(tokens: chunk)
        var logits: [Float] = []
        var start = 0
        while start < tokens.count {
            let end = start + Self.prefillPiece(remaining: tokens.count - start, budget: chunk)
            let chunkRows: LogitsRows
            switch rows {
            case .all: chunkRows = .all
            case .last: chunkRows = end == tokens.count ? .last : .none
            case .none: chunkRows = .none
            }
            // The last chunk may be shorter than the workspace: a smaller one for it (the
            // larger one released first).
            if end - start != ws.tokens {
                ws = decodeWorkspace
                ws = workspace(tokens: end - start)
            }
            logits += pass(tokens[start..<end], logits: chunkRows, workspace: ws, tracer: nil)
            start = end
        }
        return logits
    }

    /// The decode workspace for one token, else a new one for `tokens` (freed after its call)
    /// whose feed-forward block runs in parts of `feedForwardPartTokens` rows, unless `whole`
    /// (a traced pass records every name once, with all rows).
    func workspace(tokens: Int, whole: Bool = false) -> EngineWorkspace {
        if tokens == 1 { return decodeWorkspace }
        let ws = EngineWorkspace(tokens: tokens, config: config, feedForwardTokens: whole ? nil : Self.feedForwardPartTokens)
        largestPrefillWorkspaceBytes = max(largestPrefillWorkspaceBytes, ws.allocatedBytes)
        return ws
    }

    /// Rows per part of the feed-forward block in a longer pass. Its buffers are most of a
    /// workspace (≈ 0.5 MB per row for V2-Lite's shapes, plus the experts' gathered inputs),
    /// while attention's are ≈ 0.1 MB per row: parts keep a long pass's memory near that of
    /// this many rows, and attention still sees all the pass's rows at once (a prompt chunk's
    /// keys are up-projected once per chunk).
    static let feedForwardPartTokens = 256

    /// The feed-forward block of layer `l` (dense MLP or MoE, `EngineFeedForward.swift`) from
    /// `ws.normed` into `ws.blockOutput`; a workspace with fewer feed-forward rows than tokens
    /// runs it in parts on workspaces of those rows (`parts`, made as needed). Every step of the
    /// block works row by row, so the parts give each row's result bit for bit.
    private func feedForward(_ layer: EngineLayer, layer l: Int, ws: EngineWorkspace, parts: inout [Int: EngineWorkspace],
                             tracer: ForwardTracer?) {
        guard ws.feedForwardTokens < ws.tokens else {
            switch layer.feedForward {
            case let .dense(mlp): denseMLP(mlp, ws: ws)
            case let .moe(moe): mixtureOfExperts(moe, layer: l, ws: ws, tracer: tracer)
            }
            return
        }
        precondition(tracer == nil, "a traced pass runs its feed-forward block whole")
        let hidden = config.hiddenSize
        var start = 0
        while start < ws.tokens {
            let rows = min(ws.feedForwardTokens, ws.tokens - start)
            let part: EngineWorkspace
            if let made = parts[rows] {
                part = made
            } else {
                part = EngineWorkspace(tokens: rows, config: config)
                parts[rows] = part
                largestPrefillWorkspaceBytes = max(largestPrefillWorkspaceBytes,
                                                   ws.allocatedBytes + parts.values.reduce(0) { $0 + $1.allocatedBytes })
            }
            part.normed.pointer.update(from: ws.normed.pointer + start * hidden, count: rows * hidden)
            feedForward(layer, layer: l, ws: part, parts: &parts, tracer: nil)
            (ws.blockOutput.pointer + start * hidden).update(from: part.blockOutput.pointer, count: rows * hidden)
            start += rows
        }
    }

    /// One forward pass over `tokens` (validated) of the engine's own sequence, appended to its cache.
    private func pass(_ tokens: ArraySlice<Int32>, logits rows: LogitsRows, workspace ws: EngineWorkspace,
                      tracer: ForwardTracer?) -> [Float] {
        let segment = PassSegment(sequence: sequence, rows: 0..<tokens.count, past: sequence.cachedTokens, logits: rows)
        return pass(tokens, segments: [segment], workspace: ws, tracer: tracer)[0]
    }

    /// One forward pass over `tokens` (validated): each segment's rows are tokens of its own
    /// sequence, at the positions after its cached ones. Every step but attention works row by
    /// row (products are mat-mats over all rows, bit-identical per row to a mat-vec), and
    /// attention reads only the row's own sequence, so a sequence's results do not depend on the
    /// other segments. Returns each segment's logits.
    func pass(_ tokens: ArraySlice<Int32>, segments: [PassSegment], workspace ws: EngineWorkspace,
              tracer: ForwardTracer?) -> [[Float]] {
        let count = tokens.count, hidden = config.hiddenSize
        precondition(ws.tokens == count, "workspace for \(ws.tokens) tokens, pass of \(count)")
        for (s, segment) in segments.enumerated() {
            segment.sequence.reserve(segment.past + segment.rows.count)
            for t in segment.rows {
                let position = segment.past + t - segment.rows.lowerBound
                ws.rowPosition[t] = position
                ws.rowSegment[t] = s
                rotation.angles(position: position, cos: ws.cosines.pointer + t * rotation.half,
                                sin: ws.sines.pointer + t * rotation.half)
            }
        }

        var feedForwardParts: [Int: EngineWorkspace] = [:]   // freed with the pass
        let x = ws.residual.pointer  // [tokens, hidden]: the residual stream
        for (t, token) in tokens.enumerated() {
            weights.embedTokens.dequantizeRowInPlace(Int(token), into: x + t * hidden)
        }
        trace(tracer, TraceName.hidden(0), x, [count, hidden])

        for (l, layer) in weights.layers.enumerated() {
            Elementwise.rmsNorm(x, rows: count, width: hidden, weight: layer.inputLayernorm, eps: config.rmsNormEps,
                               into: ws.normed.pointer)
            attention(layer: l, weights: layer.attention, segments: segments, ws: ws, tracer: tracer)
            EngineMath.add(ws.blockOutput.pointer, into: x, count: count * hidden)
            trace(tracer, TraceName.attn(l), x, [count, hidden])

            Elementwise.rmsNorm(x, rows: count, width: hidden, weight: layer.postAttentionLayernorm, eps: config.rmsNormEps,
                               into: ws.normed.pointer)
            feedForward(layer, layer: l, ws: ws, parts: &feedForwardParts, tracer: tracer)
            trace(tracer, TraceName.moe(l), ws.blockOutput.pointer, [count, hidden])
            EngineMath.add(ws.blockOutput.pointer, into: x, count: count * hidden)
            trace(tracer, TraceName.hidden(l + 1), x, [count, hidden])
        }
        for segment in segments { segment.sequence.cachedTokens = segment.past + segment.rows.count }

        Elementwise.rmsNorm(x, rows: count, width: hidden, weight: weights.finalNorm, eps: config.rmsNormEps,
                           into: ws.normed.pointer)
        trace(tracer, TraceName.finalNorm, ws.normed.pointer, [count, hidden])
        let logits = logitRows(segments: segments, ws: ws)
        if let tracer, tracer.wants(TraceName.logits) {
            let vocab = config.vocabSize
            tracer.record(TraceName.logits, TracedTensor(shape: [logits[0].count / vocab, vocab], floats: logits[0]))
        }
        return logits
    }

    /// lm_head over the rows the segments want (all of theirs, their last, or none), as one
    /// product: each weight row is read once for the whole batch.
    private func logitRows(segments: [PassSegment], ws: EngineWorkspace) -> [[Float]] {
        let hidden = config.hiddenSize, vocab = config.vocabSize, normed = ws.normed.pointer
        var wanted: [Int] = []
        for segment in segments {
            switch segment.logits {
            case .all: wanted += segment.rows
            case .last: wanted.append(segment.rows.upperBound - 1)
            case .none: break
            }
        }
        let k = wanted.count
        guard k > 0 else { return segments.map { _ in [] } }
        let input: PreparedActivations
        if k == ws.tokens {   // every row, in order
            ws.hiddenInput.load(normed)
            input = ws.hiddenInput
        } else if k == 1 {
            ws.hiddenInput.loadToken(0, from: normed + wanted[0] * hidden)
            input = ws.hiddenInput
        } else {
            input = PreparedActivations(columns: hidden, tokens: k)
            for (i, row) in wanted.enumerated() { input.loadToken(i, from: normed + row * hidden) }
        }
        let all = [Float](unsafeUninitializedCapacity: k * vocab) { buffer, initialized in
            let output = buffer.baseAddress!
            phase(ws) { $0.append(MatrixProduct(matrix: weights.lmHead, input: input, tokens: k == 1 ? .one(0) : .all, output: output)) }
            initialized = k * vocab
        }
        if segments.count == 1 { return [all] }
        var result: [[Float]] = []
        result.reserveCapacity(segments.count)
        var offset = 0
        for segment in segments {
            let rows: Int
            switch segment.logits {
            case .all: rows = segment.rows.count
            case .last: rows = 1
            case .none: rows = 0
            }
            result.append(Array(all[offset * vocab ..< (offset + rows) * vocab]))
            offset += rows
        }
        return result
    }

    // MARK: Helpers

    /// Runs one parallel phase of products (`build` appends them to the workspace's reused list,
    /// so a decode step does not allocate a new array per phase).
    ///
    /// A phase that streams fewer than `parallelThresholdBytes` of weights runs on the calling
    /// thread: waking the pool costs ≈ 0.5 µs on a quiet machine but a scheduler quantum
    /// (≈ 1 ms) on a busy one, more than the work itself (the same kernels compute every row, so
    /// the results are identical either way).
    @inline(__always)
    func phase(_ ws: EngineWorkspace, _ build: (inout [MatrixProduct]) -> Void) {
        ws.products.removeAll(keepingCapacity: true)
        build(&ws.products)
        var bytes = 0
        for p in ws.products { bytes += p.matrix.streamedBytes * p.tokenCount }
        if pool.threadCount == 1 || bytes < Self.parallelThresholdBytes {
            for p in ws.products { p.compute() }
        } else {
            pool.run(ws.products)
        }
    }

    /// Work (weight or cache bytes streamed) below which a phase is not worth a parallel region:
    /// ≈ 10 µs of streaming on one core.
    static let parallelThresholdBytes = 128 * 1024

    /// `pool.parallelFor` when the work is worth it (`bytes` ≥ the threshold), else serial.
    @inline(__always)
    func parallelFor(_ count: Int, bytes: Int, _ work: (Range<Int>) -> Void) {
        if bytes < Self.parallelThresholdBytes { work(0..<count) } else { pool.parallelFor(count, work) }
    }

    /// Offers a [shape] float tensor to the tracer (copied only if wanted).
    @inline(__always)
    func trace(_ tracer: ForwardTracer?, _ name: @autoclosure () -> String, _ values: UnsafePointer<Float>, _ shape: [Int]) {
        guard let tracer else { return }
        let name = name()
        guard tracer.wants(name) else { return }
        let count = shape.reduce(1, *)
        tracer.record(name, TracedTensor(shape: shape, floats: Array(UnsafeBufferPointer(start: values, count: count))))
    }
}
