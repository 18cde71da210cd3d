import ArgumentParser
import DSV2
import DSV2Analysis
import Foundation

/// `dsv2 compare`: lines up the named intermediates of two dumps (or of two engines run on the same
/// input) in forward-pass order and reports how far apart they are, where the first threshold breaks.
struct CompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Compare two dumps, or two engines on one input, tensor by tensor in layer order.",
        discussion: """
        dsv2 compare A.safetensors B.safetensors
        dsv2 compare [--model M] [--engines reference,quantized:q4] [--candidate-model M2] [--ids 1,2,3 | --prompt "text"]

        A is the baseline (KL is KL(A||B)). Metrics: maxabs, rrms, cos for every tensor; kl, klmax, \
        top1, top5 for logits; jaccard, identical for routers. --fail-above 'GLOB:METRIC<OP>VALUE,...' \
        (ops < > <= >=) marks a tensor failed when the condition holds; a threshold that matches no \
        compared tensor is a usage error. Exit status: 0 no failure, 1 a threshold broke or a shared \
        tensor's shape differs, 2 bad arguments (including such a threshold) or unreadable input. \
        JSON schema: docs/COMPARE.md.
        """)

    @Argument(help: "Two dump files (safetensors): baseline, then candidate.")
    var files: [String] = []

    @OptionGroup var selection: ModelSelection

    @Option(name: .long, help: "Two engines, baseline first: e.g. reference,quantized:q4 or reference,reference:absorbed.")
    var engines: String = "reference,quantized:q4"

    @Option(name: .customLong("candidate-model"),
            help: ArgumentHelp("Run the second engine on this model instead of --model: e.g. --model hf-folder --engines reference,quantized --candidate-model model.gguf (quant, conversion or engine?).",
                               valueName: "hf-folder|model.dsv2|model.gguf"))
    var candidateModel: String?

    @OptionGroup var quantized: QuantizedEngineOptions
    @OptionGroup var threads: ThreadOptions
    @OptionGroup var loading: LoadOptions

    @Option(name: .long, help: "Comma-separated input token ids (engine mode).")
    var ids: String?

    @Option(name: [.customShort("p"), .long], help: "Input text, encoded with the model's tokenizer (engine mode).")
    var prompt: String?

    @Option(name: .long, help: "Globs of the names to trace (engine mode).")
    var trace: String = "*"

    @Option(name: .customLong("fail-above"), help: "Thresholds, e.g. 'hidden.*:cos<0.999,logits:kl>0.01'.")
    var failAbove: String?

    @Flag(name: .long, help: "Print the report as JSON (docs/COMPARE.md) instead of a table.")
    var json = false

    func run() throws {
        let thresholds = try failAbove.map { try Threshold.parseList($0) } ?? []
        let (baseline, candidate) = try loadSides()
        let report = ComparisonReport(baseline: baseline, candidate: candidate, thresholds: thresholds)
        // A threshold that checks nothing is a mistake (a typo in the glob or the metric), not a
        // pass: it would silently disable a CI gate.
        if !report.unusedThresholds.isEmpty {
            throw UsageError("--fail-above: \(report.unusedThresholds.joined(separator: ", ")) matches no compared tensor that has the metric (names: \(Self.names(report)))")
        }
        if json {
            Terminal.write(String(decoding: try report.jsonData(), as: UTF8.self) + "\n")
        } else {
            var text = report.renderTable()
            if Terminal.stdoutIsTTY, let first = report.firstFailure {
                let line = "FIRST FAILURE: \(first.message)"
                text = text.replacingOccurrences(of: line, with: "\u{1B}[1;31m\(line)\u{1B}[0m")
            }
            Terminal.write(text)
        }
        if !report.passed { throw ExitCode(ExitStatus.failure) }
    }

    /// The compared names, shortened for a message.
    static func names(_ report: ComparisonReport) -> String {
        let names = report.tensors.map(\.name)
        return names.count <= 8 ? names.joined(separator: ", ") : names.prefix(8).joined(separator: ", ") + ", …"
    }

    /// Engine mode (no dump files: the engines of --engines on --model, or on the embedded
    /// model) or file mode.
    private func loadSides() throws -> (TensorSet, TensorSet) {
        guard !files.isEmpty else {
            let specs = try EngineSpec.parseList(engines)
            guard specs.count == 2 else { throw UsageError("--engines needs exactly two engines (baseline,candidate), got '\(engines)'") }
            let model = try selection.open()
            let patterns = trace.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !patterns.isEmpty else { throw UsageError("--trace selects nothing") }
            let tokens = try AnalysisCLI.inputIDs(model: model, ids: ids, prompt: prompt)
            // One engine at a time, so only one model is resident.
            var sides: [TensorSet] = []
            for spec in specs {
                let sideModel = try sides.isEmpty || candidateModel == nil
                    ? model : ModelSelection.open(candidateModel, verify: !selection.noVerify)
                let choice = try spec.choice(quantized, threads: threads.threads)
                // Kept logits: this side's rows and its tracer's copy, and the first side's while the second runs.
                let engine = try loading.load(sideModel, choice, threads: threads.threads, contextTokens: tokens.count,
                                              longestPass: tokens.count, traced: true, logitsRows: tokens.count,
                                              logitsCopies: 2 + sides.count)
                sides.append(try spec.trace(engine, tokens: tokens, patterns: patterns))
            }
            return (sides[0], sides[1])
        }
        guard selection.model == nil, candidateModel == nil else { throw UsageError("give either two dump files or --model, not both") }
        guard files.count == 2 else { throw UsageError("expected two dump files (baseline candidate), got \(files.count)") }
        guard ids == nil, prompt == nil else { throw UsageError("--ids/--prompt need engine mode (no dump files)") }
        return (try TensorSet(safetensors: URL(fileURLWithPath: files[0])),
                try TensorSet(safetensors: URL(fileURLWithPath: files[1])))
    }
}
