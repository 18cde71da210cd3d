import ArgumentParser
import DSV2Container
import DSV2Converter
import DSV2Formats
import DSV2GGUF
import Foundation

/// `dsv2 export`: a model → GGUF (llama.cpp's `deepseek2`, split MLA layout).
struct ExportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Write a .dsv2 container (or a Hugging Face folder) as a GGUF file for llama.cpp.",
        discussion: """
        q8 becomes Q8_0 and q4 becomes Q4_0 with dsv2's blocks unchanged (so an error-minimising q4 \
        is a better Q4_0 file); f32/f16/bf16 stay; norms and routers are F32. Metadata and tokenizer \
        are written as llama.cpp's convert_hf_to_gguf.py writes them for deepseek2, with kv_b_proj \
        split into attn_k_b (exact F32 when kv_b is quantized: its transpose is not whole blocks) \
        and attn_v_b. The file is written next to the target and renamed at the end.
        """)

    @Argument(help: "A .dsv2 container or a Hugging Face folder.")
    var model: String

    @Option(name: .shortAndLong, help: "The GGUF file to write.")
    var output: String

    @Option(help: "Convert while exporting with this preset (\(QuantizationPolicy.presetNames.joined(separator: ", "))); default: as stored.")
    var quant: String?

    @Option(help: "general.name (default: the model's file or folder name).")
    var name: String?

    @Flag(help: "Overwrite the output if it exists.")
    var force = false

    @Flag(help: "No progress output.")
    var quiet = false

    func run() throws {
        let destination = URL(fileURLWithPath: output)
        if !force, FileManager.default.fileExists(atPath: destination.path) { throw ContainerError.exists(path: destination.path) }
        let url = URL(fileURLWithPath: model)
        var (source, _) = try Converter.openSource(url)
        if let quant {
            guard let policy = QuantizationPolicy.preset(quant) else {
                throw ValidationError("unknown --quant \"\(quant)\"; use one of \(QuantizationPolicy.presetNames.joined(separator: ", "))")
            }
            source = QuantizingSource(source, policy: policy)
        }
        let reporter = ProgressReporter(quiet: quiet)
        let start = Date()
        let summary = try GGUFExporter.export(source, name: name ?? url.deletingPathExtension().lastPathComponent, to: destination) {
            reporter.update(done: $0, total: $1, items: $0, itemCount: $1, label: $2, elapsed: Date().timeIntervalSince(start), force: $0 == $1)
        }
        reporter.finish()
        let types = summary.typeCounts.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")
        reporter.note("wrote \(output): \(summary.tensors) tensors (\(types)), \(ProgressReporter.bytes(summary.bytes)) of tensor data")
    }
}
