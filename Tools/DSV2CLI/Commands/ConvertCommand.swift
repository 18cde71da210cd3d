import ArgumentParser
import Foundation
import DSV2
import DSV2Converter

/// `dsv2 convert`: HF safetensors folder (or a container) → `.dsv2` container.
struct ConvertCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a Hugging Face checkpoint (or a .dsv2 container, or a DeepSeek-V2 .gguf) into a .dsv2 container.",
        discussion: """
        Presets (--quant): q8, q4, q4-mixed, f16, bf16, f32 (see docs/FORMAT.md). Every tensor is \
        checked against config.json first. The output is written to a temporary file next to it \
        and renamed at the end, so an interrupted conversion leaves nothing at the target path. \
        Converting a container stored in q8/q4/q4-mixed to another preset needs --allow-requantize. \
        A .gguf converts as stored without --quant (Q8_0/Q4_0 → q8/q4 bit-exactly, other types as \
        their exact floats).
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

    @OptionGroup var threads: ThreadOptions

    @Flag(name: .customLong("allow-requantize"), help: "Convert a container stored in a quantized preset to another preset (lossy: its values were already rounded).")
    var allowRequantize = false

    @OptionGroup var target: ContainerOutputOptions

    func run() throws {
        if case .other = try FileKind(path: source) { try FileKind.requireRegularFile(source) }
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
        let destination = try target.prepareDestination()
        let reporter = ProgressReporter(quiet: target.quiet || target.json)
        let summary: ConversionSummary
        if isGGUF {
            let (weights, provenance) = try GGUFCLI.conversionSource(URL(fileURLWithPath: source))
            if let policy {
                let quantizedTensors = weights.tensorNames.contains { weights.tensorInfo($0)?.type.isQuantized == true }
                if !allowRequantize, quantizedTensors, policy.name != "f32" {
                    throw EngineChoiceError.requantize(path: source, stored: "GGUF Q8_0/Q4_0", requested: policy.name)
                }
                let options = ConversionOptions(policy: policy, compression: compression, threads: threads.count, overwrite: target.force)
                summary = try Converter.convert(source: weights, provenance: provenance, to: destination, options: options) {
                    reporter.update($0)
                }
            } else {
                let options = ConversionOptions(policy: .f32, compression: compression, threads: threads.count, overwrite: target.force)
                summary = try Converter.convertAsStored(source: weights, quantization: GGUFCLI.storedLabel(weights), provenance: provenance,
                                                        to: destination, options: options) { reporter.update($0) }
            }
        } else {
            guard let policy else { throw ValidationError("--quant is required") }
            let (weights, provenance) = try Converter.openSource(URL(fileURLWithPath: source))
            if let stored = (weights as? ContainerReader)?.metadata.quantization, !allowRequantize,
               Model.isRequantization(stored: stored, requested: policy) {
                throw EngineChoiceError.requantize(path: source, stored: stored, requested: policy.name)
            }
            let options = ConversionOptions(policy: policy, compression: compression, threads: threads.count, overwrite: target.force)
            summary = try Converter.convert(source: weights, provenance: provenance, to: destination, options: options) {
                reporter.update($0)
            }
        }
        reporter.finish()
        try target.report(ContainerSummaryJSON(output: target.output, tensors: summary.metadata.tensors.count,
                                               outputBytes: summary.outputBytes, inputBytes: summary.inputBytes,
                                               seconds: summary.seconds, quantization: summary.metadata.quantization),
                          line: String(format: "wrote %@: %d tensors, %@ from %@ of source (ratio %.3f) in %.1f s (%.0f MB/s of input)",
                                       target.output, summary.metadata.tensors.count, ProgressReporter.bytes(summary.outputBytes),
                                       ProgressReporter.bytes(summary.inputBytes),
                                       Double(summary.inputBytes) / Double(max(summary.outputBytes, 1)), summary.seconds,
                                       Double(summary.inputBytes) / max(summary.seconds, 1e-9) / 1e6),
                          reporter: reporter)
    }
}
