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
