import ArgumentParser
import DSV2Reference
import Foundation

/// `dsv2 dump`: runs one forward pass and writes the named intermediates to a safetensors file,
/// the same names and layouts as the fixtures' golden.safetensors, for `dsv2 compare`.
struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Write the named intermediates of one forward pass to a safetensors file.",
        discussion: """
        Names (see docs/COMPARE.md): input_ids, hidden.N, kv_latent.N, attn.N, router.N.indices, \
        router.N.weights, moe.N, final_norm, logits (one row per input token). The default --trace \
        is what the golden files hold: 'logits,hidden.*,attn.*,final_norm,router.*'. The output is \
        deterministic: the same model, engine and input give a byte-identical file.
        """)

    @Option(name: .long, help: "Model folder (config.json + safetensors).")
    var model: String

    @Option(name: .long, help: "Engine: reference, reference:absorbed, quantized:q8, quantized:q4.")
    var engine: String = "reference"

    @Option(name: .long, help: "Comma-separated input token ids.")
    var ids: String?

    @Option(name: .long, help: "Input text, encoded with the model's tokenizer (BOS added as its config says).")
    var prompt: String?

    @Option(name: .long, help: "Comma-separated globs of the names to write.")
    var trace: String = TraceName.goldenPatterns.joined(separator: ",")

    @Option(name: [.short, .long], help: "Output .safetensors file.")
    var output: String

    @Option(name: .long, help: "Worker threads of the quantized engine.")
    var threads: Int?

    func run() throws {
        try AnalysisCLI.exitingOnError("dump") {
            let modelURL = try AnalysisCLI.modelURL(model)
            let spec = try EngineSpec(parsing: engine)
            let patterns = trace.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !patterns.isEmpty else { throw UsageError("--trace selects nothing") }
            let tokens = try AnalysisCLI.inputIDs(model: modelURL, ids: ids, prompt: prompt)
            let dump = try Self.trace(model: modelURL, engine: spec, tokens: tokens, patterns: patterns, threads: threads)
            var writer = SafetensorsWriter()
            writer.metadata = ["format": "dsv2-dump", "engine": spec.description, "trace": patterns.joined(separator: ",")]
            for name in dump.names {
                let tensor = dump.tensors[name]!
                switch tensor.values {
                case let .float(v): try writer.add(name, floats: v, shape: tensor.shape)
                case let .int32(v): try writer.add(name, int32s: v, shape: tensor.shape)
                }
            }
            try writer.write(to: URL(fileURLWithPath: output))
        }
    }

    /// Runs `engine` once over `tokens` (logits for every row) and keeps the traced names matching
    /// `patterns`, plus `input_ids`.
    static func trace(model: URL, engine: EngineSpec, tokens: [Int32], patterns: [String], threads: Int?) throws -> TensorSet {
        let languageModel = try engine.load(model: model, threads: threads)
        let tracer = RecordingTracer(patterns: patterns)
        _ = try languageModel.forward(tokens: tokens, logits: .all, tracer: tracer)
        var set = TensorSet(label: engine.description, tracer: tracer)
        set.tensors["input_ids"] = TracedTensor(shape: [tokens.count], int32s: tokens)
        return set
    }
}
