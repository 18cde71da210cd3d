import ArgumentParser
import DSV2
import DSV2Server
import Foundation

/// `dsv2 bench serve`: the server's throughput with N concurrent streaming clients over loopback.
struct BenchServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Benchmark the server: aggregate and per-stream decode tokens/s, TTFT, peak RSS per client count.",
        discussion: """
        Starts the server in this process on 127.0.0.1 (any free port), with --parallel = the \
        largest client count, then for each client count runs that many clients at once, each \
        sending --requests streaming /v1/completions requests in turn: a prompt of --prompt-tokens \
        seeded random ids (never a cached prefix), --gen-tokens generated greedily past EOS. \
        Aggregate decode tokens/s = generated tokens after each stream's first / (last token of \
        any stream − first token of any stream), so it includes the others' prefill chunks; \
        decode-only steps = tokens / seconds of the server's steps that fed no prompt token \
        (batched decode alone); per-stream = the mean of each request's own rate; TTFT from \
        sending the request to its first token.
        """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: ArgumentHelp("A tokenizer folder (tokenizer.json) for a model that has none, e.g. a synthetic one.",
                               valueName: "folder"))
    var tokenizer: String?

    @Option(help: "Client counts, comma separated.")
    var clients = "1,4,16"

    @Option(name: .customLong("prompt-tokens"), help: "Prompt length of each request.")
    var promptTokens = 128

    @Option(name: .customLong("gen-tokens"), help: "Tokens generated per request.")
    var genTokens = 32

    @Option(help: "Requests each client sends, one after the other.")
    var requests = 1

    @Option(name: .customLong("prefill-chunk"), help: "The server's prompt tokens per step.")
    var prefillChunk = 128

    @Option(help: "Seed of the random prompts.")
    var seed: UInt64 = 0

    @Flag(help: "Print the JSON report on stdout (the table goes to stderr).")
    var json = false

    struct Level: Codable {
        var clients: Int
        var requests: Int
        var generatedTokens: Int
        var wallSeconds: Double
        var aggregateDecodeTokensPerSecond: Double
        /// Tokens per second of the steps that fed no prompt token (batched decode alone).
        var decodeStepTokensPerSecond: Double
        var perStreamDecodeTokensPerSecond: Double
        var ttftP50Seconds: Double
        var ttftP95Seconds: Double
        var peakRSSBytes: Int
    }

    struct Report: Codable {
        var model: String
        var threads: Int
        var promptTokens: Int
        var genTokens: Int
        var levels: [Level]
    }

    /// One request's timings (seconds since the level started).
    struct Timing {
        var sent: Double
        var tokenTimes: [Double]
    }

    func run() async throws {
        let levels = try BenchModelCommand.parseList(clients, option: "--clients")
        guard promptTokens >= 1, genTokens >= 2, requests >= 1 else {
            throw ValidationError("--prompt-tokens ≥ 1, --gen-tokens ≥ 2 and --requests ≥ 1")
        }
        let log = { (line: String) in Terminal.writeError(line + "\n") }
        guard modelArguments.engine.kind == .quantized else {
            throw ValidationError("bench serve runs the quantized engine (batched decode steps); drop --engine reference")
        }
        let model = try modelArguments.selection.open()
        let choice = modelArguments.choice
        var options = ServerOptions()
        options.port = 0
        options.parallel = levels.max()!
        options.maxQueue = options.parallel
        options.prefillChunk = prefillChunk
        options.logLevel = .critical
        options.contextLength = min(model.config.maxPositionEmbeddings, promptTokens + genTokens + 1)
        let server = OpenAIServer(options: options)
        try server.load(model: model, choice: choice,
                                    tokenizer: tokenizer.map { try Tokenizer.load(from: URL(fileURLWithPath: $0)) })
        let backend = server.backend!
        let (ports, portSink) = AsyncStream.makeStream(of: Int.self)
        let serving = Task { try await server.run { portSink.yield($0) } }
        var portIterator = ports.makeAsyncIterator()
        guard let port = await portIterator.next() else { throw ValidationError("the server did not start") }
        log("bench serve: \(model.label(choice)), \(backend.engine.threadCount) thread\(backend.engine.threadCount == 1 ? "" : "s"), 127.0.0.1:\(port), "
            + "prompt \(promptTokens), \(genTokens) generated per request")

        let vocab = model.config.vocabSize
        var rng = SplitMix64(seed: seed)
        func prompt() -> [Int] { (0..<promptTokens).map { _ in Int(rng.next() % UInt64(vocab)) } }
        _ = try Self.stream(port: port, prompt: prompt(), tokens: 2, start: Date())   // warm-up
        var report = Report(model: model.label(choice), threads: backend.engine.threadCount,
                            promptTokens: promptTokens, genTokens: genTokens, levels: [])
        for level in levels {
            let prompts = (0..<level).map { _ in (0..<requests).map { _ in prompt() } }
            ResourceUsage.resetPeak()
            let decodeBefore = server.metrics.decodeOnly
            let start = Date()
            let timings = try await Self.runClients(port: port, prompts: prompts, tokens: genTokens, start: start)
            let wall = Date().timeIntervalSince(start)
            let decodeAfter = server.metrics.decodeOnly
            let decodeSeconds = decodeAfter.seconds - decodeBefore.seconds
            let decodeStepRate = decodeSeconds > 0 ? Double(decodeAfter.tokens - decodeBefore.tokens) / decodeSeconds : 0
            let firsts = timings.compactMap { $0.tokenTimes.first }, lasts = timings.compactMap { $0.tokenTimes.last }
            let decoded = timings.reduce(0) { $0 + max(0, $1.tokenTimes.count - 1) }
            let span = (lasts.max() ?? 0) - (firsts.min() ?? 0)
            let perStream = timings.map { t -> Double in
                guard t.tokenTimes.count > 1 else { return 0 }
                return Double(t.tokenTimes.count - 1) / (t.tokenTimes.last! - t.tokenTimes.first!)
            }
            let ttfts = timings.compactMap { t in t.tokenTimes.first.map { $0 - t.sent } }.sorted()
            func percentile(_ p: Double) -> Double { ttfts.isEmpty ? 0 : ttfts[min(ttfts.count - 1, Int(p * Double(ttfts.count - 1) + 0.5))] }
            let result = Level(clients: level, requests: timings.count, generatedTokens: timings.reduce(0) { $0 + $1.tokenTimes.count },
                               wallSeconds: wall, aggregateDecodeTokensPerSecond: span > 0 ? Double(decoded) / span : 0,
                               decodeStepTokensPerSecond: decodeStepRate,
                               perStreamDecodeTokensPerSecond: perStream.reduce(0, +) / Double(max(1, perStream.count)),
                               ttftP50Seconds: percentile(0.5), ttftP95Seconds: percentile(0.95),
                               peakRSSBytes: ResourceUsage.peakResidentBytes())
            report.levels.append(result)
            log(String(format: "clients %3d: aggregate decode %8.2f tok/s (%.2fx), decode-only steps %8.2f tok/s (%.2fx), per stream %7.2f tok/s, TTFT p50 %.3f s p95 %.3f s, peak RSS %.1f MiB",
                       level, result.aggregateDecodeTokensPerSecond,
                       result.aggregateDecodeTokensPerSecond / max(1e-9, report.levels[0].aggregateDecodeTokensPerSecond),
                       result.decodeStepTokensPerSecond,
                       result.decodeStepTokensPerSecond / max(1e-9, report.levels[0].decodeStepTokensPerSecond),
                       result.perStreamDecodeTokensPerSecond, result.ttftP50Seconds, result.ttftP95Seconds,
                       Double(result.peakRSSBytes) / 1048576))
        }
        serving.cancel()
        _ = try? await serving.value
        server.shutdown()
        if json { try JSONOutput.print(report, pretty: true) }
    }

    /// Runs one thread per client (blocking sockets), off Swift's cooperative pool, which the
    /// server's handlers need.
    static func runClients(port: Int, prompts: [[[Int]]], tokens: Int, start: Date) async throws -> [Timing] {
        /// What the client threads report, behind a lock.
        final class Outcome: @unchecked Sendable {
            let lock = NSLock()
            var timings: [Timing] = []
            var failure: Error?
        }
        return try await withCheckedThrowingContinuation { continuation in
            let outcome = Outcome()
            let group = DispatchGroup()
            for clientPrompts in prompts {
                group.enter()
                Thread.detachNewThread {
                    defer { group.leave() }
                    for prompt in clientPrompts {
                        do {
                            let timing = try stream(port: port, prompt: prompt, tokens: tokens, start: start)
                            outcome.lock.withLock { outcome.timings.append(timing) }
                        } catch {
                            outcome.lock.withLock { outcome.failure = error }
                        }
                    }
                }
            }
            Thread.detachNewThread {
                group.wait()
                if let failure = outcome.failure { continuation.resume(throwing: failure) } else { continuation.resume(returning: outcome.timings) }
            }
        }
    }

    /// One streaming completion; the time of each token (every chunk carries one token's
    /// log-probability, so held-back text still counts).
    static func stream(port: Int, prompt: [Int], tokens: Int, start: Date) throws -> Timing {
        let body = "{\"prompt\": [\(prompt.map(String.init).joined(separator: ","))], \"max_tokens\": \(tokens), "
            + "\"temperature\": 0, \"ignore_eos\": true, \"logprobs\": 0, \"stream\": true}"
        // Generous: with many clients a request waits for every prompt ahead of it.
        let client = try LoopbackClient(port: port, timeoutSeconds: 1800)
        defer { client.close() }
        var timing = Timing(sent: Date().timeIntervalSince(start), tokenTimes: [])
        try client.send(LoopbackClient.request("POST", "/v1/completions", body: body))
        let head = try client.readHead()
        guard head.status == 200 else { throw ValidationError("the server answered \(head.status)") }
        var pending = ""
        try client.readBody(headers: head.headers) { data in
            pending += String(decoding: data, as: UTF8.self)
            while let end = pending.range(of: "\n\n") {
                let event = pending[..<end.lowerBound]
                pending.removeSubrange(..<end.upperBound)
                if event.contains("\"token_logprobs\"") { timing.tokenTimes.append(Date().timeIntervalSince(start)) }
            }
            return true
        }
        return timing
    }
}
