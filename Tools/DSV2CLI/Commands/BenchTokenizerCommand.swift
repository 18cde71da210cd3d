import ArgumentParser
import DSV2
import Foundation

/// `dsv2 bench tokenizer`: encode throughput over a few MB of mixed text, next to the figure of
/// Hugging Face `tokenizers` (Python binding, one thread, 2-vCPU VM; fixture README).
struct BenchTokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Tokenizer encode throughput (MB/s, tokens/s) next to Hugging Face tokenizers.")

    @Option(name: [.customShort("m"), .long],
            help: "A model (folder or .dsv2) or a folder holding tokenizer.json (default: Tests/Fixtures/tokenizer/deepseek-v2).")
    var model: String = "Tests/Fixtures/tokenizer/deepseek-v2"

    @Option(name: .long, help: "JSON lines with a \"text\" field to build the corpus from (default: cases.jsonl in the --model folder).")
    var corpus: String?

    @Option(name: .long, help: "Corpus size in MB (10^6 bytes of UTF-8), built by repeating the texts.")
    var megabytes: Double = 4

    @Option(name: .long, help: "Timed runs; the best is reported.")
    var repetitions: Int = 3

    @Flag(name: .long, help: "Print one JSON object.")
    var json = false

    /// HF tokenizers 0.23.3 on the real DeepSeek-V2 tokenizer (fixture README, MB per CPU-second).
    static let hfEncodeBatchMBps = 1.05...1.20
    static let hfSingleEncodeMBps = 0.61...0.73

    func run() throws {
        let source = try TokenizerSource(model)
        let folder = (try? FileKind(path: model)) == .directory ? URL(fileURLWithPath: model)
                                                                 : URL(fileURLWithPath: model).deletingLastPathComponent()
        let corpusURL = corpus.map { URL(fileURLWithPath: $0) } ?? folder.appendingPathComponent("cases.jsonl")
        guard let corpusData = try? Data(contentsOf: corpusURL) else {
            throw UsageError("cannot read the corpus \(corpusURL.path) (pass --corpus)")
        }
        var texts: [String] = []
        for (i, line) in corpusData.split(separator: 0x0A).enumerated() {
            guard let value = try? JSONValue.parse(Data(line)) else {
                throw UsageError("\(corpusURL.path) line \(i + 1): invalid JSON")
            }
            if let text = value["text"]?.stringValue, !text.isEmpty { texts.append(text) }
        }
        guard !texts.isEmpty else { throw UsageError("\(corpusURL.path): no \"text\" rows") }

        // Items: the texts repeated until the corpus reaches the requested size.
        let target = Int(megabytes * 1_000_000)
        var items: [String] = []
        var bytes = 0
        while bytes < target {
            for t in texts where bytes < target { items.append(t); bytes += t.utf8.count }
        }
        let joined = items.joined(separator: "\n")

        let loadStart = DispatchTime.now()
        _ = try source.makeTokenizer()
        let loadSeconds = seconds(since: loadStart)

        // Each run uses a fresh tokenizer (cold piece cache), like the HF measurement.
        var bestItems = Double.infinity, bestJoined = Double.infinity
        var cpuItems = Double.infinity, cpuJoined = Double.infinity
        var tokensItems = 0, tokensJoined = 0
        for _ in 0..<max(1, repetitions) {
            let fresh = try source.makeTokenizer()
            let start = DispatchTime.now()
            let cpuStart = BenchClock.threadCPU()  // CPU time: the HF anchor figures are CPU-time based too
            var count = 0
            for item in items { count += try fresh.encode(item).count }
            bestItems = min(bestItems, seconds(since: start))
            cpuItems = min(cpuItems, BenchClock.threadCPU() - cpuStart)
            tokensItems = count

            let fresh2 = try source.makeTokenizer()
            let start2 = DispatchTime.now()
            let cpuStart2 = BenchClock.threadCPU()
            tokensJoined = try fresh2.encode(joined).count
            bestJoined = min(bestJoined, seconds(since: start2))
            cpuJoined = min(cpuJoined, BenchClock.threadCPU() - cpuStart2)
        }
        let mbItems = Double(bytes) / 1e6 / bestItems
        let mbJoined = Double(joined.utf8.count) / 1e6 / bestJoined
        let cpuMBItems = Double(bytes) / 1e6 / cpuItems
        let cpuMBJoined = Double(joined.utf8.count) / 1e6 / cpuJoined
        let hf = BenchTokenizerCommand.hfEncodeBatchMBps, hfOne = BenchTokenizerCommand.hfSingleEncodeMBps

        if json {
            let result: JSONValue = .object([
                ("benchmark", .string("tokenizer")),
                ("tokenizer", .string(source.path)),
                ("corpus", .string(corpusURL.path)),
                ("corpus_bytes", .number(Double(bytes))),
                ("items", .number(Double(items.count))),
                ("threads", .number(1)),
                ("load_seconds", .number((loadSeconds * 1000).rounded() / 1000)),
                ("encode_items_mb_per_s", .number((mbItems * 100).rounded() / 100)),
                ("encode_items_tokens_per_s", .number((Double(tokensItems) / bestItems).rounded())),
                ("encode_joined_mb_per_s", .number((mbJoined * 100).rounded() / 100)),
                ("encode_items_mb_per_cpu_s", .number((cpuMBItems * 100).rounded() / 100)),
                ("encode_joined_mb_per_cpu_s", .number((cpuMBJoined * 100).rounded() / 100)),
                ("encode_joined_tokens_per_s", .number((Double(tokensJoined) / bestJoined).rounded())),
                ("hf_encode_batch_mb_per_s", .array([.number(hf.lowerBound), .number(hf.upperBound)])),
                ("hf_single_encode_mb_per_s", .array([.number(hfOne.lowerBound), .number(hfOne.upperBound)])),
                // Against the upper end of HF's CPU-time range, from our CPU time.
                ("speedup_vs_hf_items", .number((cpuMBItems / hf.upperBound * 10).rounded() / 10)),
                ("speedup_vs_hf_joined", .number((cpuMBJoined / hfOne.upperBound * 10).rounded() / 10)),
            ])
            print(result.serialized)
        } else {
            print("tokenizer  \(source.path) (loaded in \(String(format: "%.2f", loadSeconds)) s)")
            print("corpus     \(items.count) items, \(String(format: "%.2f", Double(bytes) / 1e6)) MB from \(corpusURL.lastPathComponent)")
            print(String(format: "per item   %7.2f MB/s wall  %7.2f MB/cpu-s  %9.0f tokens/s   (HF encode_batch, 1 thread: %.2f-%.2f MB/cpu-s) -> %.1fx",
                         mbItems, cpuMBItems, Double(tokensItems) / bestItems, hf.lowerBound, hf.upperBound, cpuMBItems / hf.upperBound))
            print(String(format: "one string %7.2f MB/s wall  %7.2f MB/cpu-s  %9.0f tokens/s   (HF one encode():         %.2f-%.2f MB/cpu-s) -> %.1fx",
                         mbJoined, cpuMBJoined, Double(tokensJoined) / bestJoined, hfOne.lowerBound, hfOne.upperBound, cpuMBJoined / hfOne.upperBound))
        }
    }

    private func seconds(since start: DispatchTime) -> Double {
        Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
    }
}
