import ArgumentParser
import CBLAS
import Foundation
import DSV2Core

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

    /// Opens the model with `threads` threads.
    static func load(path: String, engine: String, quant: String?, threads: Int, verify: Bool = true) throws -> BenchSubject {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ValidationError("--model \(path) does not exist")
        }
        let fileBytes = Self.diskBytes(url, isDirectory: isDirectory.boolValue)
        guard let kind = EngineKind(rawValue: engine.lowercased()) else {
            throw ValidationError("unknown --engine \"\(engine)\"; use quantized or reference")
        }
        switch kind {
        case .reference:
            guard isDirectory.boolValue else {
                throw ValidationError("the reference engine reads Hugging Face folders; \(path) is a file (use --engine quantized)")
            }
            // The absorbed form caches the latent (kv_lora_rank + qk_rope) per token and layer in fp32.
            let model = try makeEngine(kind: .reference, modelPath: url, attentionForm: .absorbed, quant: quant)
            openblas_set_num_threads(Int32(threads))
            let config = model.config
            return BenchSubject(
                model: model, engine: "reference", quantization: "f32", fileBytes: fileBytes,
                kvBytesPerToken: config.latentCacheWidth * config.numHiddenLayers * 4,
                weightBytesPerToken: ActiveWeights.bytesPerToken(config: config) { _, shape in shape.reduce(1, *) * 4 },
                setThreads: { openblas_set_num_threads(Int32($0)) })
        case .quantized:
            let (model, quantization) = try makeQuantizedEngine(modelPath: url, quant: quant, threads: threads, verify: verify)
            return BenchSubject(model: model, engine: "quantized", quantization: quantization, fileBytes: fileBytes,
                                kvBytesPerToken: model.kvCacheBytesPerToken,
                                weightBytesPerToken: model.weightBytesReadPerToken,
                                setThreads: { model.setThreadCount($0) })
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
