import Foundation
import DSV2Container
import DSV2Core
import DSV2Formats
import DSV2Kernels
import DSV2Quantized
import DSV2Reference

/// Which engine runs a model, and how.
public enum EngineChoice: Equatable, Sendable {
    /// The fast engine (`QuantizedEngine`).
    /// - preset: the quantization applied while loading (`q8`, `q4`, `q4-mixed`, `f16`, `bf16`,
    ///   `f32`); nil = q8 for a Hugging Face folder, the stored types for a container.
    /// - threads: worker-pool participants; nil = automatic (`Model.automaticThreads`).
    /// - kvCache: element type of the latent KV cache.
    /// - allowRequantize: let `preset` convert a container stored in a quantized preset (lossy:
    ///   the values were already rounded once).
    case quantized(preset: String? = nil, threads: Int? = nil, kvCache: KVCacheType = .f16, allowRequantize: Bool = false)
    /// The fp32 oracle (`ReferenceModel`), Hugging Face folders only.
    case reference(form: AttentionForm = .expanded, storage: WeightStorage = .fp32)

    /// `quantized` or `reference`.
    public var kindName: String {
        switch self {
        case .quantized: return "quantized"
        case .reference: return "reference"
        }
    }
}

/// A choice of engine that cannot run on this model.
public enum EngineChoiceError: Error, CustomStringConvertible, Equatable {
    case referenceNeedsFolder(path: String)
    case requantize(path: String, stored: String, requested: String)
    case threads(Int)

    public var description: String {
        switch self {
        case let .referenceNeedsFolder(path):
            return "\(path): the reference engine reads the original weights of a Hugging Face folder (safetensors); run a .dsv2 container with the quantized engine"
        case let .requantize(path, stored, requested):
            return "\(path) is stored as \(stored): loading it as \(requested) converts values that were already rounded to \(stored), which cannot bring back the original precision; use the Hugging Face folder, or allow it (--allow-requantize)"
        case let .threads(count):
            return "the thread count must be at least 1 (got \(count))"
        }
    }
}

extension Model {
    /// Below this hidden size a decode step's products take microseconds each, less than handing
    /// work to another thread: tiny-dsv2 (hidden 192) decodes 2-4x faster on one thread than on
    /// two (2-core VM, `generate --json`, interleaved runs: 440-2070 vs 120-1070 tokens/s).
    public static let singleThreadHiddenSize = 512

    /// Threads when none are asked for: one for a tiny model, else one per core.
    public var automaticThreads: Int {
        config.hiddenSize <= Self.singleThreadHiddenSize ? 1 : WorkerPool.defaultThreadCount
    }

    /// The quantization the engine runs with: the preset asked for, else q8 for a folder and the
    /// stored preset for a container; `f32` for the reference.
    public func quantization(_ choice: EngineChoice) -> String {
        switch choice {
        case let .quantized(preset, _, _, _):
            if let preset, let policy = QuantizationPolicy.preset(preset) { return policy.name }
            if format == .gguf { return "gguf types" }
            return storedQuantization ?? QuantizationPolicy.q8.name
        case .reference:
            return "f32"
        }
    }

    /// Whether loading a container stored as `stored` with the preset `requested` converts values
    /// that a quantized preset already rounded: a container in q8/q4/q4-mixed loaded (or
    /// converted) as anything else.
    public static func isRequantization(stored: String, requested: QuantizationPolicy) -> Bool {
        guard let storedPolicy = QuantizationPolicy.preset(stored) else { return false }
        return storedPolicy.name != requested.name && storedPolicy.defaultType.isQuantized
    }

    /// Builds the engine `choice` over this model's weights (the source opened by `open`; nothing
    /// is opened twice). The quantized engine's worker pool is made once, with the final count.
    public func makeEngine(_ choice: EngineChoice) throws -> LanguageModel {
        switch choice {
        case let .quantized(preset, threads, kvCache, allowRequantize):
            return try makeQuantizedEngine(preset: preset, threads: threads, kvCache: kvCache, allowRequantize: allowRequantize)
        case let .reference(form, storage):
            guard let source = weights as? HFCheckpointSource else { throw EngineChoiceError.referenceNeedsFolder(path: url.path) }
            let weights = try ReferenceWeights(checkpoint: source.checkpoint, config: config, storage: storage)
            return ReferenceModel(config: config, weights: weights, attentionForm: form)
        }
    }

    /// `makeEngine(.quantized(…))` with the concrete type (benchmarks read its figures).
    public func makeQuantizedEngine(preset: String? = nil, threads: Int? = nil, kvCache: KVCacheType = .f16,
                                    allowRequantize: Bool = false) throws -> QuantizedEngine {
        let threadCount = threads ?? automaticThreads
        guard threadCount >= 1 else { throw EngineChoiceError.threads(threadCount) }
        let source = try quantizedSource(preset: preset, allowRequantize: allowRequantize)
        if let reader = source as? ContainerReader, reader.verifyRawTensors {
            // The raw tensors are checked beside the engine's set-up and first forward, which
            // waits for the check before it returns anything (docs/LIMITS.md).
            let check = BackgroundTensorCheck(reader: reader)
            do {
                let engine = try QuantizedEngine(source: check.source, threads: threadCount, kvCacheType: kvCache)
                engine.pendingWeightCheck = { try check.wait(threads: threadCount) }
                return engine
            } catch {
                check.cancel()
                throw error
            }
        }
        return try QuantizedEngine(source: source, threads: threadCount, kvCacheType: kvCache)
    }

    /// The tensors the quantized engine loads: a folder quantized with `preset` (q8 by default)
    /// while loading, a container as stored or converted to `preset`.
    func quantizedSource(preset: String?, allowRequantize: Bool) throws -> WeightSource {
        let policy = try preset.map { name -> QuantizationPolicy in
            guard let policy = QuantizationPolicy.preset(name) else { throw EngineOptionError.unknownPreset(name) }
            return policy
        }
        if format == .gguf {
            // GGUF tensors run as stored (Q8_0/Q4_0 imported as q8/q4, other types as their
            // exact floats) unless a preset is asked for; requantizing Q8_0/Q4_0 needs the flag.
            guard let policy else { return weights }
            let quantizedTensors = weights.tensorNames.contains { weights.tensorInfo($0)?.type.isQuantized == true }
            if !allowRequantize, quantizedTensors, policy.name != "f32" {
                throw EngineChoiceError.requantize(path: url.path, stored: "GGUF Q8_0/Q4_0", requested: policy.name)
            }
            return QuantizingSource(weights, policy: policy)
        }
        guard let stored = storedQuantization else { return QuantizingSource(weights, policy: policy ?? .q8) }
        guard let policy, policy.name != stored else { return weights }
        if !allowRequantize, Self.isRequantization(stored: stored, requested: policy) {
            throw EngineChoiceError.requantize(path: url.path, stored: stored, requested: policy.name)
        }
        return QuantizingSource(weights, policy: policy)
    }
}
