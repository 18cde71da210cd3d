import ArgumentParser
import DSV2
import Foundation

/// The engines a command can run a model with (`--engine`).
enum EngineKind: String, CaseIterable, ExpressibleByArgument {
    /// The fp32 reference (`ReferenceModel`) on a Hugging Face checkpoint folder.
    case reference
    /// The quantized engine (`QuantizedEngine`) on a HF folder or a `.dsv2` container.
    case quantized
}

extension AttentionForm: ExpressibleByArgument {}
extension WeightStorage: ExpressibleByArgument {}
extension KVCacheType: ExpressibleByArgument {}

/// `--engine` and its companions turned into the library's `EngineChoice`: the one place
/// commands name an engine. `--quant` applies to the quantized engine only (the reference
/// computes in fp32); `form` and `storage` to the reference.
func engineChoice(kind: EngineKind, quant: String? = nil, threads: Int? = nil, kvCache: KVCacheType = .f16,
                  allowRequantize: Bool = false, form: AttentionForm = .expanded,
                  storage: WeightStorage = .fp32) throws -> EngineChoice {
    switch kind {
    case .reference:
        if let quant, quant.lowercased() != "f32" {
            throw UsageError("the reference engine computes in fp32; --quant \(quant) needs --engine quantized")
        }
        return .reference(form: form, storage: storage)
    case .quantized:
        return .quantized(preset: quant, threads: threads, kvCache: kvCache, allowRequantize: allowRequantize)
    }
}
