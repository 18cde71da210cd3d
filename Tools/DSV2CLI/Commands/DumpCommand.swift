import ArgumentParser
import DSV2
import Foundation

/// `dsv2 dump`: runs an engine on token ids and writes its named intermediates as F32/I32
/// tensors in a safetensors file laid out like the golden files (`input_ids`, `logits`,
/// `hidden.N`, `attn.N`, `final_norm`, `router.N.indices/weights`, and with `-n N` the
/// greedy `generated_ids` and `decode_logits`, computed through the KV cache).
struct DumpCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Run a model on token ids and write its named intermediates to a .safetensors file.",
        discussion: """
            Tensor names: hidden.N (N=0 after the embedding, N=l+1 after layer l), attn.N, kv_latent.N, \
            moe.N, router.N.indices (I32) / router.N.weights, final_norm, logits [T, vocab]. \
            --trace selects them by shell glob (default: what the golden files hold). \
            With -n/--max-tokens N, generated_ids (I32 [N]) and decode_logits [N, vocab] (row 0 = last prompt row) \
            are greedy, one token at a time through the KV cache, without stopping at EOS.
            """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(name: .long, help: "Comma-separated input token ids, e.g. 1,2,3.")
    var ids: String

    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Greedy tokens to generate after the input.")
    var maxTokens: Int = 0

    @Option(name: .long, help: "Comma-separated globs of the tensor names to write (default: \(TraceName.goldenPatterns.joined(separator: ","))).")
    var trace: String?

    @OptionGroup var target: OutputOptions

    @Flag(name: .long, help: "Print what was written as JSON (path, engine, tensors with shapes).")
    var json = false


    func validate() throws {
        guard maxTokens >= 0 else { throw ValidationError("-n/--max-tokens must not be negative") }
    }

    func run() throws {
        let tokens = try parseTokenIDs(ids)
        let patterns = trace.map { $0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) } }
            ?? TraceName.goldenPatterns
        let destination = try target.destination()
        let model = try modelArguments.selection.open()
        // Kept logits: the returned rows and the tracer's copy (the writer copies them after the
        // workspace is freed), and decode_logits.
        let keptRows = RecordingTracer(patterns: patterns).wants(TraceName.logits) ? tokens.count : 1
        let engine = try modelArguments.load(model, contextTokens: tokens.count + maxTokens, longestPass: tokens.count,
                                             traced: true, logitsRows: 2 * keptRows + 2 * maxTokens)
        let vocab = engine.config.vocabSize

        let tracer = RecordingTracer(patterns: patterns)
        let rows: LogitsRows = tracer.wants(TraceName.logits) ? .all : .last
        let logits = try engine.forward(tokens: tokens, logits: rows, tracer: tracer)

        var writer = SafetensorsWriter()
        let options = modelArguments.engine
        writer.metadata = ["producer": "dsv2 dump", "engine": options.kind.rawValue, "mla": (options.mla ?? .expanded).rawValue,
                           "weights": (options.weights ?? .fp32).rawValue, "model": model.url.path,
                           "input_ids": tokens.map(String.init).joined(separator: ",")]
        if options.kind == .quantized { writer.metadata["quant"] = options.quant ?? "default" }
        try writer.add("input_ids", int32s: tokens, shape: [tokens.count])
        for name in tracer.names {
            guard let tensor = tracer[name] else { continue }
            switch tensor.values {
            case let .float(values): try writer.add(name, floats: values, shape: tensor.shape)
            case let .int32(values): try writer.add(name, int32s: values, shape: tensor.shape)
            }
        }

        if maxTokens > 0 {
            var row = Array(logits[(logits.count - vocab)...])  // last prompt row
            var generated: [Int32] = [], decodeLogits: [Float] = []
            for step in 0..<maxTokens {
                decodeLogits += row
                let next = greedyToken(row[...])
                generated.append(next)
                if step + 1 < maxTokens { row = try engine.forward(tokens: [next], logits: .last, tracer: nil) }
            }
            try writer.add("generated_ids", int32s: generated, shape: [maxTokens])
            try writer.add("decode_logits", floats: decodeLogits, shape: [maxTokens, vocab])
        }
        try writer.write(to: destination)
        if json {
            try JSONOutput.print(Report(path: destination.path, engine: model.label(modelArguments.choice),
                                        tensors: writer.tensorNames), pretty: true)
        } else {
            Terminal.writeError("wrote \(writer.tensorNames.count) tensors to \(target.output)\n")
        }
    }

    /// `dump --json`.
    struct Report: Encodable {
        var path: String
        var engine: String
        var tensors: [String]
    }
}
