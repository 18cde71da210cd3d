import ArgumentParser
import CBLAS
import Foundation
import DSV2

/// The model under benchmark with what the report needs to know about it.
struct BenchSubject {
    let model: LanguageModel
    let engine: String
    let quantization: String
    /// Size of the model on disk (container file, or the folder's safetensors and config).
    let fileBytes: Int
    let kvBytesPerToken: Int
    let weightBytesPerToken: Int
    /// Changes the engine's thread count (the quantized engine's pool; OpenBLAS for the reference).
    let setThreads: (Int) -> Void
    /// Nanoseconds spent in the attention core so far (the quantized engine; nil for the reference).
    var attentionNanoseconds: (() -> UInt64)? = nil

    /// Loads `model` with the engine of `engine` and `threads` threads, after the memory check.
    static func load(_ model: Model, engine: EngineOptions, loading: LoadOptions, threads: Int,
                     contextTokens: Int, longestPass: Int) throws -> BenchSubject {
        let fileBytes = Self.diskBytes(model.url, isDirectory: model.format == .huggingFace)
        switch engine.kind {
        case .reference:
            // The absorbed form caches the latent (kv_lora_rank + qk_rope) per token and layer in fp32.
            let choice = EngineChoice.reference(form: engine.mla ?? .absorbed, storage: engine.weights ?? .fp32)
            let loaded = try loading.load(model, choice, threads: threads, contextTokens: contextTokens, longestPass: longestPass)
            let config = loaded.config
            let perToken = (engine.mla ?? .absorbed) == .absorbed ? config.latentCacheWidth
                                                                  : config.numAttentionHeads * (config.qHeadDim + config.vHeadDim)
            return BenchSubject(
                model: loaded, engine: "reference", quantization: "f32", fileBytes: fileBytes,
                kvBytesPerToken: perToken * config.numHiddenLayers * 4,
                weightBytesPerToken: ActiveWeights.bytesPerToken(config: config) { _, shape in shape.reduce(1, *) * 4 },
                setThreads: { openblas_set_num_threads(Int32($0)) })
        case .quantized:
            let choice = engine.choice(threads: threads)
            guard let loaded = try loading.load(model, choice, threads: threads, contextTokens: contextTokens,
                                                longestPass: longestPass) as? QuantizedEngine else {
                preconditionFailure("the quantized choice builds a QuantizedEngine")
            }
            loaded.measuresAttentionTime = true
            return BenchSubject(model: loaded, engine: "quantized", quantization: model.quantization(choice),
                                fileBytes: fileBytes, kvBytesPerToken: loaded.kvCacheBytesPerToken,
                                weightBytesPerToken: loaded.weightBytesReadPerToken,
                                setThreads: { loaded.setThreadCount($0) },
                                attentionNanoseconds: { loaded.attentionCoreNanoseconds })
        }
    }

    static func diskBytes(_ url: URL, isDirectory: Bool) -> Int {
        let fileManager = FileManager.default
        func size(_ path: String) -> Int { (try? fileManager.attributesOfItem(atPath: path)[.size] as? Int) ?? 0 }
        guard isDirectory else { return size(url.path) }
        let names = (try? fileManager.contentsOfDirectory(atPath: url.path)) ?? []
        return names.reduce(0) { $0 + size(url.appendingPathComponent($1).path) }
    }
}
