import ArgumentParser
import Foundation
import DSV2Core

/// `dsv2 bench model` (the default of `dsv2 bench`): prefill and decode speed of a whole model,
/// time to first token, peak RSS, KV-cache and weight bytes per token, and decode's share of
/// this machine's memory read bandwidth (measured by a probe at the end of the run).
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Benchmark a whole model: prefill/decode tokens/s, TTFT, RSS, roofline.",
        discussion: """
        The prompt is seeded random token ids (synthetic models have no tokenizer). For every
        thread count and prompt length: one warm-up, then --repetitions runs of prefill + greedy
        decode of --gen-tokens tokens; figures are medians with min/max. Decode's achieved
        bandwidth is weight bytes read per token × decode tokens/s; the roofline fraction divides
        it by the read bandwidth a probe measures with the same thread count.
        Make models with `dsv2 synth` (e.g. --preset v2-lite --quant q4 -o lite-q4.dsv2).
        """)

    @Option(help: "A .dsv2 container (memory-mapped) or a Hugging Face folder.")
    var model: String

    @Option(help: "quantized or reference (the fp32 oracle; Hugging Face folders only, small models).")
    var engine: String = "quantized"

    @Option(help: "For a Hugging Face folder with the quantized engine: quantization preset applied at load.")
    var quant: String?

    @Option(help: "Prompt lengths, comma separated.")
    var promptTokens: String = "128,512"

    @Option(help: "Tokens decoded after each prompt.")
    var genTokens: Int = 64

    @Option(help: "Thread counts, comma separated.")
    var threads: String = "1,2"

    @Option(help: "Timed runs per configuration (after one warm-up).")
    var repetitions: Int = 3

    @Option(help: "Seed of the random prompt.")
    var seed: UInt64 = 0

    @Option(help: ArgumentHelp("Read bandwidth to use instead of the probe, GB/s per thread count: e.g. 1:13,2:24.",
                               discussion: "For a busy machine, where the probe measures what others leave over."))
    var readBandwidth: String?

    @Flag(help: "Print the JSON report on stdout (the table goes to stderr).")
    var json = false

    @Option(help: "Also write the JSON report to this file.")
    var output: String?

    @Flag(name: .customLong("no-verify"), help: "Skip the load-time check of a raw .dsv2 container's checksums and finiteness.")
    var noVerify = false

    func run() throws {
        let promptLengths = try Self.parseList(promptTokens, option: "--prompt-tokens")
        let threadCounts = try Self.parseList(threads, option: "--threads")
        guard genTokens >= 1 else { throw ValidationError("--gen-tokens must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        let log = { (line: String) in FileHandle.standardError.write(Data((line + "\n").utf8)) }

        log("loading \(model) (\(engine) engine)")
        let subject = try BenchSubject.load(path: model, engine: engine, quant: quant, threads: threadCounts[0],
                                              verify: !noVerify)
        let config = subject.model.config
        if let longest = promptLengths.max(), longest + genTokens > config.maxPositionEmbeddings {
            throw ValidationError("prompt + generated tokens exceed max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        let resettable = ResourceUsage.resetPeak()
        var results: [BenchModelResult] = []
        var random = SplitMix64(seed: seed)
        let prompts = Dictionary(uniqueKeysWithValues: promptLengths.map { length in
            (length, (0..<length).map { _ in Int32(random.next() % UInt64(config.vocabSize)) })
        })
        for threadCount in threadCounts {
            subject.setThreads(threadCount)
            for length in promptLengths {
                let prompt = prompts[length]!
                if resettable { ResourceUsage.resetPeak() }
                // Warm-up: faults in the pages of the always-used weights, sizes the buffers.
                _ = try runOnce(subject.model, prompt: Array(prompt.prefix(min(length, 32))), generate: 2)
                var prefill: [Double] = [], decode: [Double] = [], ttft: [Double] = []
                for _ in 0..<repetitions {
                    let run = try runOnce(subject.model, prompt: prompt, generate: genTokens)
                    prefill.append(Double(length) / run.prefillSeconds)
                    decode.append(Double(genTokens) / run.decodeSeconds)
                    ttft.append(run.prefillSeconds)
                }
                let decodeMedian = BenchStatistic(decode).median
                let achieved = Double(subject.weightBytesPerToken) * decodeMedian
                results.append(BenchModelResult(
                    threads: threadCount, promptTokens: length, genTokens: genTokens, repetitions: repetitions,
                    prefillTokensPerSecond: BenchStatistic(prefill).median, decodeTokensPerSecond: decodeMedian,
                    timeToFirstTokenSeconds: BenchStatistic(ttft).median,
                    prefillSpread: BenchStatistic(prefill), decodeSpread: BenchStatistic(decode),
                    timeToFirstTokenSpread: BenchStatistic(ttft),
                    peakRssBytes: ResourceUsage.peakResidentBytes(),
                    kvBytesPerToken: subject.kvBytesPerToken,
                    kvBytesPerTokenExpandedF16: ActiveWeights.expandedF16KVBytesPerToken(config),
                    weightBytesPerToken: subject.weightBytesPerToken,
                    achievedBytesPerSecond: achieved, readBandwidthBytesPerSecond: 0, rooflineFraction: 0))
                log(String(format: "threads %d prompt %d: prefill %.2f tok/s, decode %.2f tok/s (%.2f-%.2f), TTFT %.3f s",
                           threadCount, length, results.last!.prefillTokensPerSecond, decodeMedian,
                           results.last!.decodeSpread.min, results.last!.decodeSpread.max,
                           results.last!.timeToFirstTokenSeconds))
            }
        }
        let processPeak = ResourceUsage.peakResidentBytes()
        // The probe runs last so its buffer does not count in the peaks above.
        var bandwidth = try readBandwidth.map { try Self.parseBandwidth($0) } ?? [:]
        let probed = Set(threadCounts).subtracting(bandwidth.keys)
        for threadCount in probed { bandwidth[threadCount] = ReadBandwidthProbe.measure(threads: threadCount) }
        for i in results.indices {
            let b = bandwidth[results[i].threads]!
            results[i].readBandwidthBytesPerSecond = b
            results[i].rooflineFraction = b > 0 ? results[i].achievedBytesPerSecond / b : 0
        }
        let report = BenchModelReport(
            model: URL(fileURLWithPath: model).lastPathComponent, engine: subject.engine,
            quantization: subject.quantization, modelFileBytes: subject.fileBytes, layers: config.numHiddenLayers,
            hiddenSize: config.hiddenSize, routedExperts: config.routedExpertCount, parameters: config.parameterCount,
            seed: seed, readBandwidthSource: probed.isEmpty ? "given" : (probed.count == Set(threadCounts).count ? "probe" : "mixed"),
            peakRssResettable: resettable, processPeakRssBytes: processPeak,
            readBandwidthBytesPerSecond: Dictionary(uniqueKeysWithValues: bandwidth.map { (String($0.key), $0.value) }),
            results: results)
        log(Self.table(report))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let data = try encoder.encode(report)
        if let output {
            do { try AtomicFile.write(data + Data("\n".utf8), to: URL(fileURLWithPath: output)) } catch {
                throw ValidationError("cannot write \(output): \(error)")
            }
        }
        if json { FileHandle.standardOutput.write(data + Data("\n".utf8)) }
    }

    struct RunTimes { var prefillSeconds: Double; var decodeSeconds: Double }

    /// Prefill `prompt`, take the greedy token, decode `generate` more greedily. The first token's
    /// time is the prefill's (TTFT); decode time covers the `generate` one-token steps.
    func runOnce(_ model: LanguageModel, prompt: [Int32], generate: Int) throws -> RunTimes {
        model.resetCache()
        let start = DispatchTime.now().uptimeNanoseconds
        var token = Self.argmax(try model.forward(tokens: prompt, logits: .last))
        let firstToken = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<generate {
            token = Self.argmax(try model.forward(tokens: [token], logits: .last))
        }
        let end = DispatchTime.now().uptimeNanoseconds
        return RunTimes(prefillSeconds: Double(firstToken - start) / 1e9, decodeSeconds: Double(end - firstToken) / 1e9)
    }

    static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    static func parseList(_ text: String, option: String) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? 0) >= 1 }) else {
            throw ValidationError("\(option) \"\(text)\" must be positive integers separated by commas")
        }
        return values.map { $0! }
    }

    /// "1:13,2:24" → [1: 13e9, 2: 24e9] bytes/s.
    static func parseBandwidth(_ text: String) throws -> [Int: Double] {
        var out: [Int: Double] = [:]
        for item in text.split(separator: ",") {
            let parts = item.split(separator: ":")
            guard parts.count == 2, let threads = Int(parts[0]), threads >= 1, let gbs = Double(parts[1]), gbs > 0 else {
                throw ValidationError("--read-bandwidth \"\(text)\" must be THREADS:GB/s pairs, e.g. 1:13,2:24")
            }
            out[threads] = gbs * 1e9
        }
        return out
    }

    static func table(_ report: BenchModelReport) -> String {
        var lines = [String(format: "%@ (%@, %@): %@ on disk, KV %d B/token (expanded f16 would be %d), %@ of weights read per token",
                            report.model, report.engine, report.quantization, ProgressReporter.bytes(report.modelFileBytes),
                            report.results.first?.kvBytesPerToken ?? 0, report.results.first?.kvBytesPerTokenExpandedF16 ?? 0,
                            ProgressReporter.bytes(report.results.first?.weightBytesPerToken ?? 0))]
        lines.append("threads prompt | prefill tok/s (min-max) | decode tok/s (min-max) | TTFT s | peak RSS | GB/s achieved / probe | roofline")
        for r in report.results {
            lines.append(String(format: "%7d %6d | %7.2f (%.2f-%.2f) | %6.2f (%.2f-%.2f) | %6.3f | %@ | %5.1f / %5.1f | %.2f",
                                r.threads, r.promptTokens, r.prefillTokensPerSecond, r.prefillSpread.min, r.prefillSpread.max,
                                r.decodeTokensPerSecond, r.decodeSpread.min, r.decodeSpread.max, r.timeToFirstTokenSeconds,
                                ProgressReporter.bytes(r.peakRssBytes), r.achievedBytesPerSecond / 1e9,
                                r.readBandwidthBytesPerSecond / 1e9, r.rooflineFraction))
        }
        return lines.joined(separator: "\n")
    }
}

