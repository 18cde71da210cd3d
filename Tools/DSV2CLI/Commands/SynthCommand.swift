import ArgumentParser
import Foundation
import DSV2Converter
import DSV2Formats

/// `dsv2 synth`: a checkpoint with the real tensor names and shapes and seeded random weights,
/// for benchmarks and engine checks at real scale without downloading a model.
struct SynthCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth",
        abstract: "Write a synthetic checkpoint (random weights, real names and shapes).",
        discussion: """
        --preset v2-lite or v2 writes the real configuration (config.json as DeepSeek ships it); \
        --preset PATH uses any config.json. --layers and --experts keep the real per-layer shapes \
        but fewer decoder layers / routed experts. --format hf writes a Hugging Face folder of \
        bf16 safetensors shards with model.safetensors.index.json; --format dsv2 writes a .dsv2 \
        container quantized by --quant (q4, q8, q4-mixed, f16, bf16, f32), exactly what \
        `dsv2 convert` makes of the HF folder. Same --seed, same bytes. Weights are generated \
        tensor by tensor (never the whole model in memory). No tokenizer is written: feed token ids.
        """)

    @Option(help: "v2-lite, v2, or a path to a config.json.")
    var preset: String

    @Option(help: "Number of decoder layers (real per-layer shapes).")
    var layers: Int?

    @Option(help: "Number of routed experts per MoE layer.")
    var experts: Int?

    @Option(help: "Quantization preset for --format dsv2: \(QuantizationPolicy.presetNames.joined(separator: ", ")). --format hf is always bf16.")
    var quant: String = "bf16"

    @Option(help: "hf (bf16 safetensors folder) or dsv2 (container).")
    var format: String = "dsv2"

    @Option(parsing: .unconditional, help: "Random seed (negative: a random one, reported).")
    var seed: Int64 = 0

    @Option(help: "Largest shard of --format hf, in bytes; suffixes K/M/G (powers of 1000) allowed.")
    var shardSize: String = "5G"

    @OptionGroup var threads: ThreadOptions

    @Option(name: .shortAndLong, help: "Output folder (--format hf) or container file (--format dsv2).")
    var output: String

    @Flag(help: "Replace the output if it exists.")
    var force = false

    @Flag(name: [.customShort("q"), .long], help: "No progress output.")
    var quiet = false

    @Flag(name: .long, help: "Print a JSON summary of what was written.")
    var json = false

    func run() throws {
        let seed = self.seed >= 0 ? UInt64(self.seed) : UInt64.random(in: 0...UInt64(UInt32.max))
        let threads = self.threads.count
        let shardBytes = format.lowercased() == "hf" ? try Self.parseSize(shardSize) : 0
        let spec = try SynthModelSpec.make(preset: preset, layers: layers, experts: experts)
        let destination = URL(fileURLWithPath: output)
        let reporter = ProgressReporter(quiet: quiet || json)
        let c = spec.config
        reporter.note("synthesizing \(spec.name): \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), \(c.routedExpertCount) routed experts, \(c.parameterCount) parameters, seed \(seed)")
        let report: (ConversionProgress) -> Void = { reporter.update($0) }
        let summary: SynthSummary
        switch format.lowercased() {
        case "hf":
            guard quant.lowercased() == "bf16" else {
                throw ValidationError("--format hf writes bf16 safetensors (as the real checkpoints); use --format dsv2 for --quant \(quant)")
            }
            summary = try Synthesizer.writeHuggingFace(spec, seed: seed, to: destination, shardBytes: shardBytes,
                                                       threads: threads, overwrite: force, progress: report)
        case "dsv2":
            guard let policy = QuantizationPolicy.preset(quant) else {
                throw ValidationError("unknown --quant \"\(quant)\"; use one of \(QuantizationPolicy.presetNames.joined(separator: ", "))")
            }
            summary = try Synthesizer.writeContainer(spec, seed: seed, to: destination, policy: policy,
                                                     threads: threads, overwrite: force, progress: report)
        default:
            throw ValidationError("unknown --format \"\(format)\"; use hf or dsv2")
        }
        reporter.finish()
        if json {
            try JSONOutput.print(Report(output: output, files: summary.files, outputBytes: summary.outputBytes,
                                        seconds: summary.seconds, seed: seed), pretty: true)
        } else {
            reporter.note(String(format: "wrote %@: %d file(s), %@ in %.1f s (%.0f MB/s)", output, summary.files.count,
                                 ProgressReporter.bytes(summary.outputBytes), summary.seconds,
                                 Double(summary.outputBytes) / max(summary.seconds, 1e-9) / 1e6))
        }
    }

    /// `synth --json`.
    struct Report: Encodable {
        var output: String
        var files: [String]
        var outputBytes: Int
        var seconds: Double
        var seed: UInt64
    }

    /// "5G", "500M", "4500000000" → bytes (decimal units, as Hugging Face's max_shard_size).
    static func parseSize(_ text: String) throws -> Int {
        let units: [Character: Int] = ["K": 1_000, "M": 1_000_000, "G": 1_000_000_000]
        var digits = text.uppercased()
        if digits.hasSuffix("B") { digits.removeLast() }
        var multiplier = 1
        if let last = digits.last, let unit = units[last] { multiplier = unit; digits.removeLast() }
        // Finite and at most 1 PB (1000000G) before converting: Int(inf) or Int(1e20) traps.
        guard let value = Double(digits), value.isFinite, value * Double(multiplier) >= 1,
              value * Double(multiplier) <= 1e15 else {
            throw ValidationError("--shard-size \"\(text)\" is not a size from 1 byte to 1000000G (e.g. 5G, 500M)")
        }
        return Int(value * Double(multiplier))
    }
}
