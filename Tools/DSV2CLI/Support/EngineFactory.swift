import ArgumentParser
import DSV2Container
import DSV2Core
import DSV2Formats
import DSV2Kernels
import DSV2Quantized
import DSV2Reference
import Foundation

/// The engines a command can run a model with (`--engine`).
enum EngineKind: String, CaseIterable, ExpressibleByArgument {
    /// The fp32 reference (`DSV2Reference.ReferenceModel`) on a Hugging Face checkpoint folder.
    case reference
    /// The quantized engine (`DSV2Quantized.QuantizedEngine`) on a HF folder or a `.dsv2` container.
    case quantized
}

extension AttentionForm: ExpressibleByArgument {}
extension WeightStorage: ExpressibleByArgument {}

/// An engine that cannot run in this build or on this input.
struct EngineUnavailableError: Error, CustomStringConvertible {
    let description: String
}

/// Opens `modelPath` with the engine `kind`: the one place commands turn `--engine` into a
/// `LanguageModel`. `attentionForm` and `weightStorage` apply to the reference (the quantized
/// engine always runs the absorbed form on its own weights); `quant` and `threads` to the
/// quantized engine (see `makeQuantizedEngine`), as does `verify`.
func makeEngine(kind: EngineKind, modelPath: URL, attentionForm: AttentionForm = .expanded,
                weightStorage: WeightStorage = .fp32, quant: String? = nil, threads: Int? = nil,
                verify: Bool = true) throws -> LanguageModel {
    switch kind {
    case .reference:
        if let quant, quant.lowercased() != "f32" {
            throw EngineUnavailableError(description: "the reference engine computes in fp32; --quant \(quant) needs --engine quantized")
        }
        return try ReferenceModel(checkpoint: modelPath, attentionForm: attentionForm, weightStorage: weightStorage)
    case .quantized:
        return try makeQuantizedEngine(modelPath: modelPath, quant: quant, threads: threads, verify: verify).engine
    }
}

/// The quantized engine for a Hugging Face folder (tensors quantized while loading with the
/// preset `quant`, default q8) or a `.dsv2` container file (tensors as stored — zero-copy from
/// the mapping for raw containers; a `quant` other than the container's own preset converts
/// each tensor while loading, from the stored values). Returns the preset in effect.
/// `verify` false skips the load-time XXH64 and finiteness pass over a raw container's tensors
/// (`ContainerReader.verifyRawTensors`); every other source is always checked.
func makeQuantizedEngine(modelPath: URL, quant: String?, threads: Int?, kvCacheType: KVCacheType = .f16,
                         verify: Bool = true) throws -> (engine: QuantizedEngine, quantization: String) {
    let threadCount = threads ?? WorkerPool.defaultThreadCount
    guard threadCount >= 1 else { throw EngineUnavailableError(description: "--threads must be at least 1") }
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: modelPath.path, isDirectory: &isDirectory) else {
        throw EngineUnavailableError(description: "\(modelPath.path): no such model folder or .dsv2 file")
    }
    let policy = try quant.map { name -> QuantizationPolicy in
        guard let policy = QuantizationPolicy.preset(name) else { throw EngineOptionError.unknownPreset(name) }
        return policy
    }
    if isDirectory.boolValue {
        let chosen = policy ?? .q8
        return (try QuantizedEngine(checkpoint: modelPath, policy: chosen, threads: threadCount, kvCacheType: kvCacheType),
                chosen.name)
    }
    let reader = try ContainerReader(path: modelPath.path, verifyRawTensors: verify)
    let stored = reader.metadata.quantization
    if let policy, policy.name != stored {
        let source = QuantizingSource(reader, policy: policy)
        return (try QuantizedEngine(source: source, threads: threadCount, kvCacheType: kvCacheType), policy.name)
    }
    return (try QuantizedEngine(source: reader, threads: threadCount, kvCacheType: kvCacheType), stored)
}
