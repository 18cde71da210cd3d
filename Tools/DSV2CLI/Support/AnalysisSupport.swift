import ArgumentParser
import DSV2
import DSV2Analysis
import Foundation

// Shared by `dsv2 compare` and `dsv2 perplexity`: which engine to run, on which token ids.

/// An engine named on the command line: `reference`, `reference:absorbed`, `quantized:q8`, `quantized:q4`.
struct EngineSpec: CustomStringConvertible {
    var kind: EngineKind
    /// `expanded`/`absorbed` for the reference, the weight type (`q8`, `q4`, …) for the quantized engine.
    var variant: String?

    var description: String { variant.map { "\(kind.rawValue):\($0)" } ?? kind.rawValue }

    init(kind: EngineKind, variant: String?) {
        self.kind = kind
        self.variant = variant
    }

    init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let kind = EngineKind(rawValue: first.lowercased()) else {
            throw UsageError("unknown engine '\(text)' (expected reference[:expanded|:absorbed] or quantized:<q8|q4|…>)")
        }
        self.kind = kind
        variant = parts.count > 1 ? parts[1].lowercased() : nil
        if kind == .reference, let variant, AttentionForm(rawValue: variant) == nil {
            throw UsageError("unknown reference variant '\(variant)' in '\(text)' (expected expanded or absorbed)")
        }
    }

    static func parseList(_ text: String) throws -> [EngineSpec] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { try EngineSpec(parsing: String($0)) }
    }

    /// The library's engine choice for this spec: a quantized variant is the preset (q8 by
    /// default for a folder, the stored types for a container), with `--kv-cache` and
    /// `--allow-requantize` from `options`.
    func choice(_ options: QuantizedEngineOptions, threads: Int?) throws -> EngineChoice {
        switch kind {
        case .reference:
            return .reference(form: variant.flatMap(AttentionForm.init(rawValue:)) ?? .expanded, storage: .fp32)
        case .quantized:
            return options.choice(preset: variant, threads: threads)
        }
    }

    /// Runs `engine` once over `tokens` (logits for every row) and keeps the traced names
    /// matching `patterns`, plus `input_ids`: the same tensors `dsv2 dump` writes.
    func trace(_ engine: LanguageModel, tokens: [Int32], patterns: [String]) throws -> TensorSet {
        let tracer = RecordingTracer(patterns: patterns)
        _ = try engine.forward(tokens: tokens, logits: .all, tracer: tracer)
        var set = TensorSet(label: description, tracer: tracer)
        set.tensors["input_ids"] = TracedTensor(shape: [tokens.count], int32s: tokens)
        return set
    }
}

enum AnalysisCLI {
    /// The input of a traced run: `--ids`, or `--prompt` encoded with the model's tokenizer (with
    /// BOS when its config asks for it), or else the `input_ids` of `<model>/golden.safetensors`.
    static func inputIDs(model: Model, ids: String?, prompt: String?) throws -> [Int32] {
        if ids != nil && prompt != nil { throw UsageError("give either --ids or --prompt, not both") }
        if let ids { return try parseTokenIDs(ids) }
        if let prompt {
            let encoded = try model.tokenizer().encode(prompt, addSpecialTokens: true).map { Int32($0) }
            guard !encoded.isEmpty else { throw UsageError("--prompt encodes to no tokens") }
            return encoded
        }
        let golden = model.url.appendingPathComponent("golden.safetensors")
        guard model.format == .huggingFace, FileManager.default.fileExists(atPath: golden.path) else {
            throw UsageError("no input: give --ids 1,2,3 or --prompt \"text\" (\(model.url.path) has no golden.safetensors to take input_ids from)")
        }
        return try SafetensorsFile(url: golden).int32s("input_ids")
    }
}
