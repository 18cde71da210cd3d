import ArgumentParser
import DSV2Reference
import Foundation

/// The engines a command can run a model with (`--engine`).
enum EngineKind: String, CaseIterable, ExpressibleByArgument {
    /// The fp32 reference (`DSV2Reference.ReferenceModel`) on a Hugging Face checkpoint folder.
    case reference
    /// The quantized engine (plugged in by `DSV2Quantized`).
    case quantized
}

extension AttentionForm: ExpressibleByArgument {}

/// An engine that cannot run in this build or on this input.
struct EngineUnavailableError: Error, CustomStringConvertible {
    let description: String
}

/// Opens `modelPath` with the engine `kind`: the one place commands turn `--engine` into a
/// `LanguageModel`. `attentionForm` applies to the reference (the quantized engine always
/// runs the absorbed form).
func makeEngine(kind: EngineKind, modelPath: URL, attentionForm: AttentionForm = .expanded) throws -> LanguageModel {
    switch kind {
    case .reference:
        return try ReferenceModel(checkpoint: modelPath, attentionForm: attentionForm)
    case .quantized:
        throw EngineUnavailableError(description: "--engine quantized is not available in this build yet")
    }
}
