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
        dsv2 compare --model M --engines reference,quantized:q4 [--ids 1,2,3 | --prompt "text"]

        A is the baseline (KL is KL(A||B)). Metrics: maxabs, rrms, cos for every tensor; kl, klmax, \
        top1, top5 for logits; jaccard, identical for routers. --fail-above 'GLOB:METRIC<OP>VALUE,...' \
        (ops < > <= >=) marks a tensor failed when the condition holds. Exit status: 0 no failure, \
        1 a threshold broke or a shared tensor's shape differs, 2 bad arguments or unreadable input. \
        JSON schema: docs/COMPARE.md.
        """)

    @Argument(help: "Two dump files (safetensors): baseline, then candidate.")
    var files: [String] = []

    @Option(name: .long, help: "Model folder: run --engines on it instead of reading dumps.")
    var model: String?

    @Option(name: .long, help: "Two engines, baseline first: e.g. reference,quantized:q4 or reference,reference:absorbed.")
    var engines: String = "reference,quantized:q4"

    @Option(name: .long, help: "Comma-separated input token ids (with --model).")
    var ids: String?

    @Option(name: .long, help: "Input text, encoded with the model's tokenizer (with --model).")
    var prompt: String?

    @Option(name: .long, help: "Globs of the names to trace (with --model).")
    var trace: String = "*"

    @Option(name: .customLong("fail-above"), help: "Thresholds, e.g. 'hidden.*:cos<0.999,logits:kl>0.01'.")
    var failAbove: String?

    @Flag(name: .long, help: "Print the report as JSON (docs/COMPARE.md) instead of a table.")
    var json = false

    @Option(name: .long, help: "Worker threads of the quantized engine.")
    var threads: Int?

    func run() throws {
        let report = try AnalysisCLI.exitingOnError("compare") { () throws -> ComparisonReport in
            let thresholds = try failAbove.map { try Threshold.parseList($0) } ?? []
            let (baseline, candidate) = try loadSides()
            return ComparisonReport(baseline: baseline, candidate: candidate, thresholds: thresholds)
        }
        if json {
            let data = try AnalysisCLI.exitingOnError("compare") { try report.jsonData() }
            FileHandle.standardOutput.write(data + Data("\n".utf8))
        } else {
            var text = report.renderTable()
            if AnalysisCLI.stdoutIsTerminal, let first = report.firstFailure {
                let line = "FIRST FAILURE: \(first.message)"
                text = text.replacingOccurrences(of: line, with: "\u{1B}[1;31m\(line)\u{1B}[0m")
            }
            FileHandle.standardOutput.write(Data(text.utf8))
        }
        if !report.passed { throw ExitCode(1) }
    }

    private func loadSides() throws -> (TensorSet, TensorSet) {
        if let model {
            guard files.isEmpty else { throw UsageError("give either two dump files or --model, not both") }
            let specs = try EngineSpec.parseList(engines)
            guard specs.count == 2 else { throw UsageError("--engines needs exactly two engines (baseline,candidate), got '\(engines)'") }
            let opened = try Model.open(model)
            let patterns = trace.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
            guard !patterns.isEmpty else { throw UsageError("--trace selects nothing") }
            let tokens = try AnalysisCLI.inputIDs(model: opened, ids: ids, prompt: prompt)
            // One engine at a time, so only one model is resident.
            let a = try specs[0].trace(model: opened, tokens: tokens, patterns: patterns, threads: threads)
            let b = try specs[1].trace(model: opened, tokens: tokens, patterns: patterns, threads: threads)
            return (a, b)
        }
        guard files.count == 2 else {
            throw UsageError(files.isEmpty ? "nothing to compare: give two dump files, or --model M --engines A,B"
                                           : "expected two dump files (baseline candidate), got \(files.count)")
        }
        guard ids == nil, prompt == nil else { throw UsageError("--ids/--prompt need --model") }
        return (try TensorSet(safetensors: URL(fileURLWithPath: files[0])),
                try TensorSet(safetensors: URL(fileURLWithPath: files[1])))
    }
}
