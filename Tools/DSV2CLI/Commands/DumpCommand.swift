import ArgumentParser
import DSV2Core
import DSV2Formats
import DSV2Reference
import Foundation

/// `dsv2 dump`: runs an engine on token ids and writes its named intermediates as F32/I32
/// tensors in a safetensors file laid out like the golden files (`input_ids`, `logits`,
/// `hidden.N`, `attn.N`, `final_norm`, `router.N.indices/weights`, and with `--generate N` the
/// greedy `generated_ids` and `decode_logits`, computed through the KV cache).
struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Run a model on token ids and write its named intermediates to a .safetensors file.",
        discussion: """
            Tensor names: hidden.N (N=0 after the embedding, N=l+1 after layer l), attn.N, kv_latent.N, \
            moe.N, router.N.indices (I32) / router.N.weights, final_norm, logits [T, vocab]. \
            --trace selects them by shell glob (default: what the golden files hold). \
            With --generate N, generated_ids (I32 [N]) and decode_logits [N, vocab] (row 0 = last prompt row) \
            are greedy, one token at a time through the KV cache, without stopping at EOS.
            """)

    @Option(name: .long, help: "Model: a Hugging Face checkpoint folder (config.json + safetensors), or a .dsv2 container (quantized engine).")
    var model: String

    @Option(name: .long, help: "Engine: \(EngineKind.allCases.map(\.rawValue).joined(separator: ", ")).")
    var engine: EngineKind = .reference

    @Option(name: .long, help: "MLA form of the reference engine: expanded or absorbed.")
    var mla: AttentionForm = .expanded

    @Option(name: .long, help: "Reference weights: fp32 (widened at load) or mapped (kept in the mmap'd checkpoint, for models larger than RAM).")
    var weights: WeightStorage = .fp32

    @Option(name: .long, help: "Quantized engine: preset applied to a Hugging Face folder (\(QuantizationPolicy.presetNames.joined(separator: ", ")); default q8) or to a container's stored values.")
    var quant: String?

    @Option(name: .long, help: "Quantized engine: worker threads (default: all cores; results do not depend on it).")
    var threads: Int?

    @Option(name: .long, help: "Comma-separated input token ids, e.g. 1,2,3.")
    var ids: String

    @Option(name: [.customShort("n"), .long], help: "Greedy tokens to generate after the input.")
    var generate: Int = 0

    @Option(name: .long, help: "Comma-separated globs of the tensor names to write (default: \(TraceName.goldenPatterns.joined(separator: ","))).")
    var trace: String?

    @Option(name: [.short, .long], help: "Output .safetensors file (written to a temp file, then renamed).")
    var out: String

    @Flag(name: .customLong("no-verify"), help: "Skip the load-time check of a raw .dsv2 container's checksums and finiteness.")
    var noVerify = false

    func validate() throws {
        guard generate >= 0 else { throw ValidationError("--generate must not be negative") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func run() throws {
        let tokens = try parseTokenIDs(ids)
        let patterns = trace.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            ?? TraceName.goldenPatterns
        let engine = try makeEngine(kind: engine, modelPath: URL(fileURLWithPath: model), attentionForm: mla,
                                    weightStorage: weights, quant: quant, threads: threads, verify: !noVerify)
        let vocab = engine.config.vocabSize

        let tracer = RecordingTracer(patterns: patterns)
        let rows: LogitsRows = tracer.wants(TraceName.logits) ? .all : .last
        let logits = try engine.forward(tokens: tokens, logits: rows, tracer: tracer)

        var writer = SafetensorsWriter()
        writer.metadata = ["producer": "dsv2 dump", "engine": self.engine.rawValue, "mla": mla.rawValue, "weights": weights.rawValue,
                           "model": model, "input_ids": tokens.map(String.init).joined(separator: ",")]
        if self.engine == .quantized { writer.metadata["quant"] = quant ?? "default" }
        try writer.add("input_ids", int32s: tokens, shape: [tokens.count])
        for name in tracer.names {
            guard let tensor = tracer[name] else { continue }
            switch tensor.values {
            case let .float(values): try writer.add(name, floats: values, shape: tensor.shape)
            case let .int32(values): try writer.add(name, int32s: values, shape: tensor.shape)
            }
        }

        if generate > 0 {
            var row = Array(logits[(logits.count - vocab)...])  // last prompt row
            var generated: [Int32] = [], decodeLogits: [Float] = []
            for step in 0..<generate {
                decodeLogits += row
                let next = greedyToken(row[...])
                generated.append(next)
                if step + 1 < generate { row = try engine.forward(tokens: [next], logits: .last, tracer: nil) }
            }
            try writer.add("generated_ids", int32s: generated, shape: [generate])
            try writer.add("decode_logits", floats: decodeLogits, shape: [generate, vocab])
        }
        try writer.write(to: URL(fileURLWithPath: out))
        print("wrote \(writer.tensorNames.count) tensors to \(out)")
    }
}
