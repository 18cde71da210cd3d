import ArgumentParser
import Foundation
import DSV2

/// `dsv2 bench model` (the default of `dsv2 bench`): prefill and decode speed of a whole model,
/// time to first token, peak RSS, KV-cache and weight bytes per token, and decode's share of
/// this machine's memory read bandwidth (measured by a probe at the end of the run).
struct BenchModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "model",
        abstract: "Benchmark a whole model: prefill/decode tokens/s, TTFT, RSS, roofline.",
        discussion: """
        The prompt is seeded random token ids (synthetic models have no tokenizer). For every \
        depth, thread count and prompt length: one warm-up, then --repetitions runs of prefill + \
        greedy decode of -n/--max-tokens tokens; figures are medians with min/max. Decode's \
        achieved bandwidth is weight bytes read per token × decode tokens/s; the roofline fraction \
        divides it by the read bandwidth a probe measures with the same thread count.

        --depth D (like llama-bench -d) puts D tokens in the cache before each run without timing \
        them: they are prefilled once per depth (seeded random ids) and kept by truncating the \
        cache between runs. The prompt then continues after them, and decode runs after \
        D + prompt tokens; --prompt-tokens 0 measures decode alone right after the depth. \
        The quantized engine also reports the share of prefill and decode time spent in its \
        attention core (the products over the latent cache, W^UK and W^UV included).

        Make models with `dsv2 synth` (e.g. --preset v2-lite --quant q4 -o lite-q4.dsv2).
        """)

    @OptionGroup var selection: ModelSelection
    @OptionGroup var engine: EngineOptions
    @OptionGroup var loading: LoadOptions

    @Option(help: "Prompt lengths, comma separated (0: no prompt, decode right after --depth).")
    var promptTokens: String = "128,512"

    @Option(help: "Tokens in the cache before each run, comma separated: prefilled once per depth, not timed.")
    var depth: String = "0"

    @Option(name: [.customShort("n"), .customLong("max-tokens")], help: "Tokens decoded after each prompt.")
    var maxTokens: Int = 64

    @Option(name: [.customShort("t"), .long], help: "Thread counts, comma separated.")
    var threads: String = "1,2"

    @Flag(name: .customLong("threads-force"), help: "Allow more than \(ThreadLimit.perCore) threads per core.")
    var threadsForce = false

    @Option(help: "Timed runs per configuration (after one warm-up).")
    var repetitions: Int = 3

    @Option(parsing: .unconditional, help: "Seed of the random prompt (negative: a random one, reported).")
    var seed: Int64 = 0

    @Option(help: ArgumentHelp("Read bandwidth to use instead of the probe, GB/s per thread count: e.g. 1:13,2:24.",
                               discussion: "For a busy machine, where the probe measures what others leave over."))
    var readBandwidth: String?

    @Flag(help: "Print the JSON report on stdout (the table goes to stderr).")
    var json = false

    @Option(name: [.customShort("o"), .long], help: "Also write the JSON report to this file.")
    var output: String?

    @Flag(help: "Overwrite the --output file if it exists.")
    var force = false

    func run() throws {
        let promptLengths = try Self.parseList(promptTokens, option: "--prompt-tokens", minimum: 0)
        let depths = try Self.parseList(depth, option: "--depth", minimum: 0).sorted()
        let threadCounts = try ThreadLimit.parseList(threads, force: threadsForce)
        guard maxTokens >= 1 else { throw ValidationError("-n/--max-tokens must be at least 1") }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        if promptLengths.contains(0), depths.contains(0) {
            throw ValidationError("--prompt-tokens 0 decodes after the --depth tokens: every depth must then be at least 1")
        }
        if let output, !force, FileManager.default.fileExists(atPath: output) {
            throw UsageError("-o/--output \(output) exists; add --force to overwrite it")
        }
        let seed = self.seed >= 0 ? UInt64(self.seed) : UInt64.random(in: 0...UInt64(UInt32.max))
        let log = { (line: String) in Terminal.writeError(line + "\n") }

        let model = try selection.open()
        let config = model.config
        let longestPrompt = promptLengths.max()!, deepest = depths.last!
        if deepest + longestPrompt + maxTokens > config.maxPositionEmbeddings {
            throw ValidationError("depth + prompt + generated tokens exceed max_position_embeddings (\(config.maxPositionEmbeddings))")
        }
        log("loading \(model.url.path) (\(engine.kind.rawValue) engine)")
        let subject = try BenchSubject.load(model, engine: engine, loading: loading, threads: threadCounts[0],
                                            contextTokens: deepest + longestPrompt + maxTokens,
                                            longestPass: max(longestPrompt, min(deepest, Self.fillChunkTokens)))
        let resettable = ResourceUsage.resetPeak()
        var results: [BenchModelResult] = []
        var random = SplitMix64(seed: seed)
        let prompts = Dictionary(uniqueKeysWithValues: promptLengths.map { length in
            (length, (0..<length).map { _ in Int32(random.next() % UInt64(config.vocabSize)) })
        })
        let fillTokens = (0..<deepest).map { _ in Int32(random.next() % UInt64(config.vocabSize)) }
        var filled = 0, nextToken: Int32 = 0
        for depth in depths {
            if depth > 0 {
                // The cache keeps the tokens of the previous depth: prefill only the rest.
                subject.setThreads(threadCounts.max()!)
                let start = DispatchTime.now().uptimeNanoseconds
                nextToken = try fill(subject.model, tokens: fillTokens, from: filled, to: depth)
                filled = depth
                log(String(format: "depth %d: cache filled in %.1f s (not timed)", depth,
                           Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9))
            }
            for threadCount in threadCounts {
                subject.setThreads(threadCount)
                for length in promptLengths {
                    let prompt = prompts[length]!
                    if resettable { ResourceUsage.resetPeak() }
                    // Warm-up: faults in the pages of the always-used weights, sizes the buffers.
                    _ = try runOnce(subject, depth: depth, prompt: Array(prompt.prefix(32)), firstToken: nextToken, generate: 2)
                    var runs: [RunTimes] = []
                    for _ in 0..<repetitions {
                        runs.append(try runOnce(subject, depth: depth, prompt: prompt, firstToken: nextToken, generate: maxTokens))
                    }
                    results.append(result(runs, subject: subject, threads: threadCount, depth: depth, promptTokens: length))
                    let r = results.last!
                    log(String(format: "threads %d depth %d prompt %d: prefill %@, decode %.2f tok/s (%.2f-%.2f), TTFT %@",
                               threadCount, depth, length, r.prefillTokensPerSecond.map { String(format: "%.2f tok/s", $0) } ?? "-",
                               r.decodeTokensPerSecond, r.decodeSpread.min, r.decodeSpread.max,
                               r.timeToFirstTokenSeconds.map { String(format: "%.3f s", $0) } ?? "-"))
                }
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
            model: model.url.lastPathComponent, engine: subject.engine,
            quantization: subject.quantization, modelFileBytes: subject.fileBytes, layers: config.numHiddenLayers,
            hiddenSize: config.hiddenSize, routedExperts: config.routedExpertCount, parameters: config.parameterCount,
            seed: seed, readBandwidthSource: probed.isEmpty ? "given" : (probed.count == Set(threadCounts).count ? "probe" : "mixed"),
            peakRssResettable: resettable, processPeakRssBytes: processPeak,
            readBandwidthBytesPerSecond: Dictionary(uniqueKeysWithValues: bandwidth.map { (String($0.key), $0.value) }),
            results: results)
        log(Self.table(report))
        let text = try JSONOutput.encode(report, pretty: true) + "\n"
        if let output { try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: output)) }
        if json { Terminal.write(text) }
    }

    /// Passes of at most this many tokens fill the cache to a depth (bounds the reference
    /// engine's score matrix; the quantized engine chunks on its own).
    static let fillChunkTokens = 512

    /// Prefills `tokens[from..<to]` after the `from` cached ones; returns the greedy next token.
    func fill(_ model: LanguageModel, tokens: [Int32], from: Int, to: Int) throws -> Int32 {
        try model.truncateCache(to: from)
        var start = from, next: Int32 = 0
        while start < to {
            let end = min(start + Self.fillChunkTokens, to)
            let logits = try model.forward(tokens: Array(tokens[start..<end]), logits: end == to ? .last : .none)
            if end == to { next = Self.argmax(logits) }
            start = end
        }
        return next
    }

    struct RunTimes {
        var prefillSeconds: Double
        var decodeSeconds: Double
        /// Seconds in the attention core (quantized engine only).
        var prefillAttentionSeconds: Double?
        var decodeAttentionSeconds: Double?
    }

    /// Keeps the first `depth` cached tokens, prefills `prompt` after them and takes its greedy
    /// token (or starts from `firstToken` without a prompt), then decodes `generate` more
    /// greedily. The first token's time is the prefill's (TTFT); decode time covers the
    /// `generate` one-token steps.
    func runOnce(_ subject: BenchSubject, depth: Int, prompt: [Int32], firstToken: Int32, generate: Int) throws -> RunTimes {
        let model = subject.model
        try model.truncateCache(to: depth)
        let attention = subject.attentionNanoseconds
        let attentionStart = attention?() ?? 0
        let start = DispatchTime.now().uptimeNanoseconds
        var token = prompt.isEmpty ? firstToken : Self.argmax(try model.forward(tokens: prompt, logits: .last))
        let firstTokenTime = DispatchTime.now().uptimeNanoseconds
        let attentionFirst = attention?() ?? 0
        for _ in 0..<generate {
            token = Self.argmax(try model.forward(tokens: [token], logits: .last))
        }
        let end = DispatchTime.now().uptimeNanoseconds
        let attentionEnd = attention?() ?? 0
        return RunTimes(prefillSeconds: Double(firstTokenTime - start) / 1e9, decodeSeconds: Double(end - firstTokenTime) / 1e9,
                        prefillAttentionSeconds: attention.map { _ in Double(attentionFirst - attentionStart) / 1e9 },
                        decodeAttentionSeconds: attention.map { _ in Double(attentionEnd - attentionFirst) / 1e9 })
    }

    /// The medians and spreads of `runs` (prefill figures only with a prompt).
    func result(_ runs: [RunTimes], subject: BenchSubject, threads: Int, depth: Int, promptTokens length: Int) -> BenchModelResult {
        let decode = BenchStatistic(runs.map { Double(maxTokens) / $0.decodeSeconds })
        let prefill = length > 0 ? BenchStatistic(runs.map { Double(length) / $0.prefillSeconds }) : nil
        let ttft = length > 0 ? BenchStatistic(runs.map(\.prefillSeconds)) : nil
        func share(_ part: KeyPath<RunTimes, Double?>, of whole: KeyPath<RunTimes, Double>) -> Double? {
            guard runs.allSatisfy({ $0[keyPath: part] != nil && $0[keyPath: whole] > 0 }) else { return nil }
            return BenchStatistic(runs.map { $0[keyPath: part]! / $0[keyPath: whole] }).median
        }
        return BenchModelResult(
            threads: threads, depth: depth, promptTokens: length, genTokens: maxTokens, repetitions: repetitions,
            prefillTokensPerSecond: prefill?.median, decodeTokensPerSecond: decode.median,
            timeToFirstTokenSeconds: ttft?.median,
            prefillSpread: prefill, decodeSpread: decode, timeToFirstTokenSpread: ttft,
            prefillAttentionShare: length > 0 ? share(\.prefillAttentionSeconds, of: \.prefillSeconds) : nil,
            decodeAttentionShare: share(\.decodeAttentionSeconds, of: \.decodeSeconds),
            peakRssBytes: ResourceUsage.peakResidentBytes(),
            kvBytesPerToken: subject.kvBytesPerToken,
            kvBytesPerTokenExpandedF16: ActiveWeights.expandedF16KVBytesPerToken(subject.model.config),
            weightBytesPerToken: subject.weightBytesPerToken,
            achievedBytesPerSecond: Double(subject.weightBytesPerToken) * decode.median,
            readBandwidthBytesPerSecond: 0, rooflineFraction: 0)
    }

    static func argmax(_ logits: [Float]) -> Int32 {
        var best = 0
        for i in logits.indices where logits[i] > logits[best] { best = i }
        return Int32(best)
    }

    static func parseList(_ text: String, option: String, minimum: Int = 1) throws -> [Int] {
        let values = text.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !values.isEmpty, values.allSatisfy({ ($0 ?? minimum - 1) >= minimum }) else {
            throw ValidationError("\(option) \"\(text)\" must be \(minimum == 0 ? "non-negative" : "positive") integers separated by commas")
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
        lines.append("threads  depth prompt | prefill tok/s (min-max) | decode tok/s (min-max) | attention share prefill/decode | TTFT s | peak RSS | GB/s achieved / probe | roofline")
        func figure(_ value: Double?, _ format: String) -> String { value.map { String(format: format, $0) } ?? "-" }
        for r in report.results {
            let prefill = r.prefillSpread.map { String(format: "%7.2f (%.2f-%.2f)", $0.median, $0.min, $0.max) } ?? "-"
            let shares = figure(r.prefillAttentionShare.map { $0 * 100 }, "%.0f%%") + " / " + figure(r.decodeAttentionShare.map { $0 * 100 }, "%.0f%%")
            lines.append(String(format: "%7d %6d %6d | %@ | %6.2f (%.2f-%.2f) | %@ | %@ | %@ | %5.1f / %5.1f | %.2f",
                                r.threads, r.depth, r.promptTokens, prefill,
                                r.decodeTokensPerSecond, r.decodeSpread.min, r.decodeSpread.max, shares,
                                figure(r.timeToFirstTokenSeconds, "%6.3f"),
                                ProgressReporter.bytes(r.peakRssBytes), r.achievedBytesPerSecond / 1e9,
                                r.readBandwidthBytesPerSecond / 1e9, r.rooflineFraction))
        }
        return lines.joined(separator: "\n")
    }
}

