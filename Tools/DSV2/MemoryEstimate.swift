import Foundation
import DSV2Core
import DSV2Formats
import DSV2Kernels
import DSV2Quantized
import DSV2Reference

/// What running a model will hold in memory, computed from the config and the stored tensor
/// types before anything is loaded.
public struct MemoryEstimate: Equatable, Sendable {
    /// The weights as the engine holds them: quantized buffers, the mapped container (its pages
    /// are read every token, so they must stay resident), or fp32 for the reference.
    public var weightBytes: Int
    /// The KV cache at `contextTokens` (the size it grows to).
    public var kvCacheBytes: Int
    /// Activations and scratch of the longest pass and of attention over the whole context.
    public var workspaceBytes: Int
    /// What the caller keeps besides the engine (e.g. logits of every position); 0 unless set.
    public var outputBytes = 0
    public var contextTokens: Int

    public var totalBytes: Int { weightBytes + kvCacheBytes + workspaceBytes + outputBytes }

    /// Memory the system can give without swapping: `MemAvailable` of /proc/meminfo (Linux),
    /// else the physical memory. `DSV2_MEMORY_AVAILABLE` (bytes) replaces it, for tests and for
    /// machines whose limit the kernel does not report (a container's cgroup).
    public static func availableBytes() -> Int {
        if let text = ProcessInfo.processInfo.environment["DSV2_MEMORY_AVAILABLE"], let bytes = Int(text), bytes >= 0 {
            return bytes
        }
        if let meminfo = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8) {
            for line in meminfo.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
                let fields = line.split(separator: " ")
                if fields.count >= 2, let kib = Int(fields[1]) { return kib * 1024 }
            }
        }
        return Int(clamping: ProcessInfo.processInfo.physicalMemory)
    }
}

extension Model {
    /// The memory `choice` needs over a context of `contextTokens` tokens whose longest single
    /// pass (a prompt, a perplexity window) is `longestPass` tokens. `traced`: the pass records
    /// its intermediates (dump, compare), so the quantized engine runs it whole instead of in
    /// chunks of `prefillChunkTokens`.
    public func memoryEstimate(_ choice: EngineChoice, contextTokens: Int, longestPass: Int,
                               traced: Bool = false) throws -> MemoryEstimate {
        let context = max(1, min(contextTokens, config.maxPositionEmbeddings))
        let pass = max(1, min(longestPass, context))
        switch choice {
        case let .quantized(preset, threads, kvCache, _):
            let source = try quantizedSource(preset: preset, allowRequantize: true)
            var weights = 0
            for name in source.tensorNames {
                guard let info = source.tensorInfo(name) else { continue }
                weights += info.shape.count == 2 ? info.type.byteCount(rows: info.shape[0], columns: info.shape[1])
                                                 : info.shape.reduce(1, *) * 4   // norms are widened to f32
            }
            return MemoryEstimate(
                weightBytes: weights,
                kvCacheBytes: QuantizedEngine.kvCacheBytes(config: config, type: kvCache, contextTokens: context),
                workspaceBytes: QuantizedEngine.scratchBytes(config: config, threads: threads ?? automaticThreads,
                                                             longestPass: pass,
                                                             prefillChunkTokens: traced ? pass : QuantizedEngine.defaultPrefillChunkTokens),
                contextTokens: context)
        case let .reference(form, storage):
            guard format == .huggingFace else { throw EngineChoiceError.referenceNeedsFolder(path: url.path) }
            // Mapped weights stay in the page cache, which the kernel can evict: they are what
            // lets a checkpoint larger than memory run, so they do not count.
            let weights = storage == .fp32 ? config.parameterCount * 4 : 0
            let perTokenPerLayer = form == .expanded
                ? config.numAttentionHeads * (config.qHeadDim + config.vHeadDim) : config.latentCacheWidth
            let kv = perTokenPerLayer * config.numHiddenLayers * 4 * context
            // fp32 activations of one pass (the widest: the experts of every token, the
            // up-projected keys and values) and its attention scores.
            let widest = max(config.intermediateSize, config.expertsPerToken * config.moeIntermediateSize,
                             config.numAttentionHeads * (config.qHeadDim + config.vHeadDim))
            let activations = pass * (8 * config.hiddenSize + 3 * widest) * 4
            let scores = config.numAttentionHeads * pass * context * 4
            return MemoryEstimate(weightBytes: weights, kvCacheBytes: kv, workspaceBytes: activations + scores,
                                  contextTokens: context)
        }
    }
}

/// A model that does not fit: the figures, and what to change.
public struct MemoryCheckError: Error, CustomStringConvertible, Equatable {
    public var estimate: MemoryEstimate
    public var availableBytes: Int
    public var engine: String

    public init(estimate: MemoryEstimate, availableBytes: Int, engine: String) {
        self.estimate = estimate
        self.availableBytes = availableBytes
        self.engine = engine
    }

    public var description: String {
        let e = estimate
        return "\(engine) needs about \(MemoryFigures.bytes(e.totalBytes)) (weights \(MemoryFigures.bytes(e.weightBytes)) + KV cache "
            + "\(MemoryFigures.bytes(e.kvCacheBytes)) for \(e.contextTokens) tokens + workspace \(MemoryFigures.bytes(e.workspaceBytes))"
            + (e.outputBytes > 0 ? " + outputs \(MemoryFigures.bytes(e.outputBytes))" : "") + ") "
            + "but \(MemoryFigures.bytes(availableBytes)) is available; use a smaller quantization (--quant q4), a shorter "
            + "context (-c/--ctx-size), or run anyway with --no-memory-check"
    }
}

/// Byte counts for people.
public enum MemoryFigures {
    public static func bytes(_ count: Int) -> String {
        let value = Double(count)
        if value >= 1e9 { return String(format: "%.2f GB", value / 1e9) }
        if value >= 1e6 { return String(format: "%.1f MB", value / 1e6) }
        if value >= 1e3 { return String(format: "%.1f kB", value / 1e3) }
        return "\(count) B"
    }
}
