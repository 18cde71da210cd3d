import DSV2Core
import DSV2Kernels

/// The rows of one forward pass that belong to one sequence: tokens at positions
/// past ..< past + rows.count of `sequence`.
struct PassSegment {
    let sequence: SequenceState
    let rows: Range<Int>
    let past: Int
    let logits: LogitsRows
}

/// What one sequence feeds to a batched step: `tokens` after its cached ones, and which of
/// their logits to return.
public struct BatchEntry {
    public var sequence: SequenceState
    public var tokens: [Int32]
    public var logits: LogitsRows

    public init(sequence: SequenceState, tokens: [Int32], logits: LogitsRows = .last) {
        self.sequence = sequence
        self.tokens = tokens
        self.logits = logits
    }
}

/// A batch that cannot run (nothing is computed and no cache changes).
public enum BatchError: Error, CustomStringConvertible, Equatable {
    case empty
    /// The same sequence twice in one batch: its rows would claim the same positions.
    case repeatedSequence(entry: Int)
    /// A sequence whose cache does not fit this engine (another model's, or another cache type).
    case foreignSequence(entry: Int)

    public var description: String {
        switch self {
        case .empty: return "a batch needs at least one entry"
        case let .repeatedSequence(entry): return "batch entry \(entry) repeats a sequence of an earlier entry"
        case let .foreignSequence(entry): return "batch entry \(entry) holds a sequence made for another model or cache type"
        }
    }
}

extension QuantizedEngine {
    /// A new, empty sequence for `forward(batch:)`, with this engine's cache type and initial capacity.
    public func makeSequence() -> SequenceState {
        SequenceState(config: config, type: kvCacheType, capacity: initialContext)
    }

    /// One forward step over several sequences (continuous batching): every weight product runs
    /// once over all the entries' tokens, attention runs per sequence over its own cache, and
    /// the routed experts run once per expert over the tokens that chose it. Each entry's tokens
    /// are appended to its sequence. Returns each entry's logits, as `forward(tokens:logits:)`
    /// would: an entry's results are bit-identical to running it alone.
    ///
    /// The step runs whole: the caller bounds its tokens (a long prompt is fed in chunks over
    /// several steps, between the others' decode tokens). Throws, before changing any cache, on
    /// an empty or repeated entry, a foreign sequence, a token outside the vocabulary or a
    /// context past `max_position_embeddings`.
    public func forward(batch: [BatchEntry]) throws -> [[Float]] {
        if pendingWeightCheck != nil { return try withWeightCheck { try forward(batch: batch) } }
        guard !batch.isEmpty else { throw BatchError.empty }
        for (i, entry) in batch.enumerated() {
            let caches = entry.sequence.caches
            guard caches.count == config.numHiddenLayers,
                  caches.allSatisfy({ $0.width == config.latentCacheWidth && $0.type == kvCacheType }) else {
                throw BatchError.foreignSequence(entry: i)
            }
            if batch[..<i].contains(where: { $0.sequence === entry.sequence }) { throw BatchError.repeatedSequence(entry: i) }
            try checkForwardInput(entry.tokens, cachedTokens: entry.sequence.cachedTokens)
        }
        var tokens: [Int32] = []
        var segments: [PassSegment] = []
        segments.reserveCapacity(batch.count)
        for entry in batch {
            segments.append(PassSegment(sequence: entry.sequence, rows: tokens.count ..< tokens.count + entry.tokens.count,
                                        past: entry.sequence.cachedTokens, logits: entry.logits))
            tokens += entry.tokens
        }
        return pass(tokens[...], segments: segments, workspace: batchWorkspace(tokens: tokens.count), tracer: nil)
    }

    /// Batches of at most this many tokens keep their workspace for the next step (a decode
    /// batch's is ≈ 0.8 MB per token for V2-Lite's shapes; a prefill chunk's is freed after it).
    static let keptBatchWorkspaceTokens = 64

    private func batchWorkspace(tokens: Int) -> EngineWorkspace {
        if let kept = batchWorkspace, kept.tokens == tokens { return kept }
        let ws = workspace(tokens: tokens)
        if tokens > 1 && tokens <= Self.keptBatchWorkspaceTokens { batchWorkspace = ws }
        return ws
    }
}
