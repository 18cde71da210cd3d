import ArgumentParser
import Foundation
import DSV2Container
import DSV2Converter
import DSV2Formats

/// `dsv2 convert`: HF safetensors folder (or a container) → `.dsv2` container.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a Hugging Face checkpoint (or a .dsv2 container) into a .dsv2 container.",
        discussion: """
        Presets (--quant): q8, q4, q4-mixed, f16, bf16, f32 (see docs/FORMAT.md). Every tensor is \
        checked against config.json first. The output is written to a temporary file next to it \
        and renamed at the end, so an interrupted conversion leaves nothing at the target path.
        """)

    @Argument(help: "A Hugging Face folder (model.safetensors or a sharded index), a .dsv2 container or a DeepSeek-V2 .gguf file.")
    var source: String

    @Option(help: "Quantization preset: \(QuantizationPolicy.presetNames.joined(separator: ", ")) (optional for a .gguf: default as stored).")
    var quant: String?

    @Option(help: "Tensor storage: zstd (compressed; byte planes for float tensors) or none (raw, mmap-ready).")
    var compress: String = "none"

    @Option(help: "zstd level (1-19).")
    var level: Int32 = 3

    @Flag(name: .customLong("no-byte-planes"), help: "Compress float tensors without grouping their bytes into planes (for measurements).")
    var noBytePlanes = false

    @Option(help: "Tensors converted in parallel (default: the number of cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @OptionGroup var target: ContainerOutputOptions

    func run() throws {
        let isGGUF = GGUFCLI.isGGUF(source)
        guard quant != nil || isGGUF else { throw ValidationError("--quant is required (\(QuantizationPolicy.presetNames.joined(separator: ", ")))") }
        let policy = try quant.map { quant -> QuantizationPolicy in
            guard let policy = QuantizationPolicy.preset(quant) else {
                throw ValidationError("unknown --quant \"\(quant)\"; use one of \(QuantizationPolicy.presetNames.joined(separator: ", "))")
            }
            return policy
        }
        let compression: CompressionOptions
        switch compress {
        case "zstd": compression = CompressionOptions(zstd: true, level: level, bytePlanes: !noBytePlanes)
        case "none": compression = .none
        default: throw ValidationError("unknown --compress \"\(compress)\"; use zstd or none")
        }
        guard (1...22).contains(level) else { throw ValidationError("--level must be 1...22") }
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        let destination = try target.prepareDestination()
        let reporter = ProgressReporter(quiet: target.quiet)
        reporter.note("reading \(source)")
        let summary: ConversionSummary
        if isGGUF, policy == nil {
            let (weights, provenance) = try GGUFCLI.conversionSource(URL(fileURLWithPath: source))
            let options = ConversionOptions(policy: .f32, compression: compression, threads: threads, overwrite: target.force)
            summary = try Converter.convertAsStored(source: weights, quantization: GGUFCLI.storedLabel(weights), provenance: provenance,
                                                    to: destination, options: options) { reporter.update($0) }
        } else {
            let (weights, provenance) = isGGUF ? try GGUFCLI.conversionSource(URL(fileURLWithPath: source))
                                               : try Converter.openSource(URL(fileURLWithPath: source))
            let options = ConversionOptions(policy: policy!, compression: compression, threads: threads, overwrite: target.force)
            summary = try Converter.convert(source: weights, provenance: provenance, to: destination, options: options) {
                reporter.update($0)
            }
        }
        reporter.finish()
        reporter.note(String(format: "wrote %@: %d tensors, %@ from %@ of source (ratio %.3f) in %.1f s (%.0f MB/s of input)",
                             target.output, summary.metadata.tensors.count, ProgressReporter.bytes(summary.outputBytes),
                             ProgressReporter.bytes(summary.inputBytes),
                             Double(summary.inputBytes) / Double(max(summary.outputBytes, 1)), summary.seconds,
                             Double(summary.inputBytes) / max(summary.seconds, 1e-9) / 1e6))
    }
}
