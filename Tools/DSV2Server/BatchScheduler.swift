import Foundation
import DSV2

/// Why a job was not accepted.
enum SchedulerError: Error, Equatable {
    /// Every slot is busy and the queue holds `maxQueue` jobs already.
    case queueFull
    case stopped
}

/// Continuous batching over `parallel` sequence slots of one `QuantizedEngine`, on a thread of
/// its own (the forward steps block for milliseconds to seconds; they must not hold up the
/// HTTP event loops or Swift's cooperative pool).
///
/// Each step: cancelled jobs release their slots; queued jobs take free slots (the slot whose
/// cached tokens share the longest prefix with the prompt, else the least recently used one,
/// and the shared prefix is not computed again); then one `forward(batch:)` runs every active
/// job — a decoding job's last sampled token, and up to `prefillChunk` prompt tokens in total
/// for the jobs still reading their prompts (a long prompt goes in chunks between the others'
/// decode steps). Jobs with logits sample their next token and report it.
final class BatchScheduler: @unchecked Sendable {
    struct Options: Sendable {
        var parallel = 4
        var maxQueue = 64
        /// Prompt tokens per step over all prefilling jobs.
        var prefillChunk = 128
        /// Most tokens (prompt + generated) a sequence may hold.
        var contextLength: Int
    }

    let engine: QuantizedEngine
    let tokenizer: Tokenizer
    let options: Options
    let metrics: ServerMetrics

    private let condition = NSCondition()
    private var queue: [GenerationJob] = []          // guarded by `condition`
    private var stopping = false                     // guarded by `condition`
    private var finished = false                     // guarded by `condition`
    /// Slots holding a job, as last counted by the scheduler thread (guarded by `condition`).
    private var occupied = 0
    private var started = false                      // guarded by `condition`
    private let slots: [Slot]
    private var active: [GenerationJob] = []         // scheduler thread only
    private var tick: UInt64 = 0

    init(engine: QuantizedEngine, tokenizer: Tokenizer, options: Options, metrics: ServerMetrics) {
        self.engine = engine
        self.tokenizer = tokenizer
        self.options = options
        self.metrics = metrics
        slots = (0..<max(1, options.parallel)).map { Slot(index: $0, sequence: engine.makeSequence()) }
    }

    /// Starts the scheduler thread.
    func start() {
        condition.lock()
        defer { condition.unlock() }
        guard !started else { return }
        started = true
        let thread = Thread { [self] in run() }
        thread.name = "dsv2-scheduler"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Fails the queued and active jobs and ends the thread (waits for the current step).
    func stop() {
        condition.lock()
        stopping = true
        condition.broadcast()
        if !started {
            for job in queue { job.continuation.yield(.failed("the server is shutting down")); job.continuation.finish() }
            queue.removeAll()
            finished = true
        }
        while !finished { condition.wait() }
        condition.unlock()
    }

    /// Queues a job. Throws `queueFull` when every slot is taken and `maxQueue` jobs wait.
    /// A job that could take a free slot is accepted whatever `maxQueue` is.
    func submit(prompt: [Int], parameters: GenerationParameters) throws -> GenerationJob {
        let job = GenerationJob(prompt: prompt, parameters: parameters, tokenizer: tokenizer)
        condition.lock()
        defer { condition.unlock() }
        if stopping { throw SchedulerError.stopped }
        if occupied + queue.count >= slots.count + options.maxQueue { throw SchedulerError.queueFull }
        queue.append(job)
        metrics.setOccupancy(active: occupied, queued: queue.count)
        condition.signal()
        return job
    }

    /// Wakes the thread so that a cancelled job leaves at once even when nothing else runs.
    func wake() {
        condition.lock()
        condition.signal()
        condition.unlock()
    }

    // MARK: The scheduler thread

    private func run() {
        while true {
            condition.lock()
            while !stopping && queue.isEmpty && active.isEmpty { condition.wait() }
            if stopping {
                let waiting = queue
                queue.removeAll()
                condition.unlock()
                for job in waiting + active { job.continuation.yield(.failed("the server is shutting down")); job.continuation.finish() }
                active.removeAll()
                condition.lock()
                finished = true
                condition.broadcast()
                condition.unlock()
                return
            }
            // Queued jobs cancelled before they started just leave.
            queue.removeAll { job in
                guard job.isCancelled else { return false }
                metrics.recordCancelled()
                job.continuation.yield(.finished(report(job, .cancelled, tail: "")))
                job.continuation.finish()
                return true
            }
            releaseCancelled()
            var admitted: [GenerationJob] = []
            var free = slots.filter { $0.job == nil }.count
            while free > 0 && !queue.isEmpty {
                admitted.append(queue.removeFirst())
                free -= 1
            }
            occupied = active.count + admitted.count
            metrics.setOccupancy(active: occupied, queued: queue.count)
            condition.unlock()
            for job in admitted { admit(job) }
            if !active.isEmpty { step() }
            condition.lock()
            occupied = active.count
            metrics.setOccupancy(active: occupied, queued: queue.count)
            let idle = active.isEmpty && queue.isEmpty
            condition.unlock()
            // Steps allocate workspaces of many sizes (prefill chunks, batch widths); returning
            // the freed pages when the server goes idle keeps its RSS from creeping up.
            if idle { Self.releaseFreedMemory() }
        }
    }

    /// glibc's `malloc_trim(0)` (not in Swift's Glibc module, so looked up), where there is one.
    private static let mallocTrim: (@convention(c) (Int) -> Int32)? = {
        #if os(Linux)
        guard let symbol = dlsym(nil, "malloc_trim") else { return nil }
        return unsafeBitCast(symbol, to: (@convention(c) (Int) -> Int32).self)
        #else
        return nil
        #endif
    }()

    private static func releaseFreedMemory() { _ = mallocTrim?(0) }

    private func releaseCancelled() {
        active.removeAll { job in
            guard job.isCancelled else { return false }
            finish(job, .cancelled, tail: "")
            return true
        }
    }

    /// Gives `job` the free slot with the longest cached prefix of its prompt (ties and no
    /// match: the least recently used), keeping that prefix.
    private func admit(_ job: GenerationJob) {
        let free = slots.filter { $0.job == nil }
        // At least the last two prompt tokens are fed: a prompt piece of one row would attend in
        // the absorbed form, and the logits would depend on what was cached
        // (`QuantizedEngine.prefillPiece`). Prompt logprobs need every row.
        let reusable = job.parameters.promptLogprobs ? 0 : max(0, job.prompt.count - 2)
        let choice = Self.chooseSlot(prompt: job.prompt, limit: reusable,
                                     candidates: free.map { (tokens: $0.tokens, lastUsed: $0.lastUsed) })
        let slot = free[choice.index]
        do {
            try slot.sequence.truncate(to: choice.shared)
        } catch {
            slot.sequence.reset()
            slot.tokens = []
            job.continuation.yield(.failed("\(error)"))
            job.continuation.finish()
            return
        }
        slot.tokens.removeSubrange(choice.shared...)
        slot.job = job
        job.slot = slot
        job.fed = choice.shared
        job.cachedTokens = choice.shared
        active.append(job)
        metrics.recordPrompt(tokens: job.prompt.count, cached: choice.shared)
        job.continuation.yield(.started(cachedTokens: choice.shared))
        if job.parameters.promptLogprobs { job.continuation.yield(.promptLogprobs([nil])) }
    }

    /// The candidate to use for `prompt` and how many of its cached tokens to keep: the longest
    /// common prefix (at most `limit`); among equals, and when nothing is shared, the least
    /// recently used candidate (lowest `lastUsed`, then lowest index).
    static func chooseSlot(prompt: [Int], limit: Int, candidates: [(tokens: [Int], lastUsed: UInt64)]) -> (index: Int, shared: Int) {
        precondition(!candidates.isEmpty)
        var best = (index: 0, shared: -1, lastUsed: UInt64.max)
        for (i, candidate) in candidates.enumerated() {
            let shared = min(limit, zip(candidate.tokens, prompt).prefix(while: { $0 == $1 }).count)
            if shared > best.shared || (shared == best.shared && candidate.lastUsed < best.lastUsed) {
                best = (i, shared, candidate.lastUsed)
            }
        }
        return (best.index, max(0, best.shared))
    }

    /// One forward step over every active job.
    private func step() {
        var entries: [BatchEntry] = []
        var members: [GenerationJob] = []
        var budget = options.prefillChunk
        // Decoding jobs first: a running stream gets its token every step.
        for job in active {
            guard let token = job.pendingToken, let slot = job.slot else { continue }
            entries.append(BatchEntry(sequence: slot.sequence, tokens: [Int32(token)], logits: .last))
            members.append(job)
        }
        for job in active where job.pendingToken == nil && budget > 0 {
            guard let slot = job.slot else { continue }
            let take = QuantizedEngine.prefillPiece(remaining: job.prompt.count - job.fed, budget: budget)
            budget -= take
            let last = job.fed + take == job.prompt.count
            let rows: LogitsRows = job.parameters.promptLogprobs ? .all : (last ? .last : .none)
            entries.append(BatchEntry(sequence: slot.sequence,
                                      tokens: job.prompt[job.fed ..< job.fed + take].map { Int32($0) }, logits: rows))
            members.append(job)
        }
        guard !entries.isEmpty else { return }
        let prefilling = members.filter { $0.pendingToken == nil }.count
        let start = DispatchTime.now().uptimeNanoseconds
        let logits: [[Float]]
        do {
            logits = try engine.forward(batch: entries)
        } catch {
            // Nothing was computed: the jobs fail, the others go on.
            for job in members {
                active.removeAll { $0 === job }
                release(job)
                job.continuation.yield(.failed("\(error)"))
                job.continuation.finish()
            }
            return
        }
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        var generated = 0
        for (entry, (job, rows)) in zip(entries, zip(members, logits)) {
            guard let slot = job.slot else { continue }
            slot.tokens += entry.tokens.map { Int($0) }
            if job.pendingToken != nil {
                job.pendingToken = nil
            } else {
                let before = job.fed
                job.fed += entry.tokens.count
                if job.parameters.promptLogprobs { reportPromptLogprobs(job, from: before, count: entry.tokens.count, rows: rows) }
                if job.fed < job.prompt.count { continue }
            }
            let vocab = engine.config.vocabSize
            let row = rows.count == vocab ? rows : Array(rows.suffix(vocab))
            generated += 1
            sample(job, logits: row)
        }
        metrics.recordStep(generated: generated, seconds: seconds, decodeOnly: prefilling == 0)
    }

    /// The logprob of each prompt token p (1 ≤ p) under the row of token p − 1.
    private func reportPromptLogprobs(_ job: GenerationJob, from start: Int, count: Int, rows: [Float]) {
        let vocab = engine.config.vocabSize
        var positions: [PositionLogprobs?] = []
        rows.withUnsafeBufferPointer { all in
            for r in 0..<count where start + r + 1 < job.prompt.count {
                let row = UnsafeBufferPointer(rebasing: all[r * vocab ..< (r + 1) * vocab])
                positions.append(LogProbabilities.at(row, chosen: job.prompt[start + r + 1], top: job.parameters.logprobs ?? 0))
            }
        }
        if !positions.isEmpty { job.continuation.yield(.promptLogprobs(positions)) }
    }

    /// Samples the next token of `job`, reports it, and ends the job or queues the token.
    private func sample(_ job: GenerationJob, logits: [Float]) {
        let parameters = job.parameters
        let token = job.sampler.sample(logits: logits, previousTokens: job.history)
        if job.firstTokenTime == 0 { job.firstTokenTime = DispatchTime.now().uptimeNanoseconds }
        job.history.append(token)
        job.generated += 1
        if parameters.eosTokenIds.contains(token) { return finishActive(job, .stop, tail: job.stops.flush()) }
        let logprobs = parameters.logprobs.map { LogProbabilities.at(logits, chosen: token, top: $0) }
        let piece = (try? job.decoder.step(token)) ?? nil
        let (text, hitStop) = piece.map { job.stops.feed($0) } ?? ("", false)
        job.continuation.yield(.token(id: token, text: text, logprobs: logprobs))
        if hitStop { return finishActive(job, .stop, tail: "") }
        if job.generated >= parameters.maxTokens { return finishActive(job, .length, tail: job.stops.flush()) }
        // Feeding the token must leave a position for the next one (as GenerationSession).
        if (job.slot?.tokens.count ?? 0) + 1 >= options.contextLength { return finishActive(job, .length, tail: job.stops.flush()) }
        job.pendingToken = token
    }

    private func finishActive(_ job: GenerationJob, _ reason: FinishReason, tail: String) {
        active.removeAll { $0 === job }
        finish(job, reason, tail: tail)
    }

    private func finish(_ job: GenerationJob, _ reason: FinishReason, tail: String) {
        release(job)
        if reason == .cancelled { metrics.recordCancelled() }
        job.continuation.yield(.finished(report(job, reason, tail: tail)))
        job.continuation.finish()
    }

    private func release(_ job: GenerationJob) {
        guard let slot = job.slot else { return }
        tick += 1
        slot.lastUsed = tick
        slot.job = nil
        job.slot = nil
    }

    private func report(_ job: GenerationJob, _ reason: FinishReason, tail: String) -> FinishReport {
        let now = DispatchTime.now().uptimeNanoseconds
        return FinishReport(reason: reason, tail: tail, promptTokens: job.prompt.count, cachedTokens: job.cachedTokens,
                            completionTokens: job.generated,
                            firstTokenSeconds: job.firstTokenTime > 0 ? Double(job.firstTokenTime - job.submitted) / 1e9 : 0,
                            decodeSeconds: job.firstTokenTime > 0 ? Double(now - job.firstTokenTime) / 1e9 : 0)
    }
}
