import ArgumentParser
import CBLAS
import Foundation
import DSV2Converter
import DSV2Quantized
import DSV2Reference

/// The model under benchmark with what the report needs to know about it.
struct BenchSubject {
    let model: LanguageModel
    let engine: String
    let quantization: String
    /// Size of the model on disk (container file, or the folder's safetensors and config).
    let fileBytes: Int
    let kvBytesPerToken: Int
    let weightBytesPerToken: Int
    let setThreads: (Int) -> Void

    static func load(path: String, engine: String, quant: String?) throws -> BenchSubject {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw ValidationError("--model \(path) does not exist")
        }
        let fileBytes = Self.diskBytes(url, isDirectory: isDirectory.boolValue)
        switch engine.lowercased() {
        case "reference":
            guard isDirectory.boolValue else {
                throw ValidationError("the reference engine reads Hugging Face folders; \(path) is a file (use --engine quantized)")
            }
            if let quant, quant.lowercased() != "f32" {
                throw ValidationError("the reference engine computes in fp32; --quant \(quant) does not apply")
            }
            // The absorbed form caches the latent (kv_lora_rank + qk_rope) per token and layer in fp32.
            let model = try ReferenceModel(checkpoint: url, attentionForm: .absorbed)
            let config = model.config
            return BenchSubject(
                model: model, engine: "reference", quantization: "f32", fileBytes: fileBytes,
                kvBytesPerToken: config.latentCacheWidth * config.numHiddenLayers * 4,
                weightBytesPerToken: ActiveWeights.bytesPerToken(config: config) { _, shape in shape.reduce(1, *) * 4 },
                setThreads: { openblas_set_num_threads(Int32($0)) })
        case "quantized":
            throw ValidationError("the quantized engine is not in this build yet (merge branch q5); use --engine reference")
        default:
            throw ValidationError("unknown --engine \"\(engine)\"; use quantized or reference")
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
