import Foundation
import Synchronization

/// Counters and gauges of the server, rendered as Prometheus text by `GET /metrics`.
public final class ServerMetrics: Sendable {
    private struct State {
        var requestsByStatus: [Int: Int] = [:]
        var promptTokens = 0
        var cachedPromptTokens = 0
        var generatedTokens = 0
        var cancelled = 0
        var active = 0
        var queued = 0
        /// The last steps that generated tokens: (tokens, seconds), for the decode rate.
        var recentSteps: [(tokens: Int, seconds: Double)] = []
        var stepSeconds = 0.0
        var steps = 0
        /// Steps that only decoded (no prompt tokens): batched decode speed without prefill.
        var decodeOnlyTokens = 0
        var decodeOnlySeconds = 0.0
    }
    private let state = Mutex(State())
    /// Steps averaged by the decode-rate gauge.
    static let rateWindow = 32

    func recordResponse(status: Int) {
        state.withLock { $0.requestsByStatus[status, default: 0] += 1 }
    }

    func recordCancelled() {
        state.withLock { $0.cancelled += 1 }
    }

    var cancelledRequests: Int { state.withLock { $0.cancelled } }

    func recordPrompt(tokens: Int, cached: Int) {
        state.withLock { $0.promptTokens += tokens; $0.cachedPromptTokens += cached }
    }

    /// Tokens generated and seconds spent in steps that fed no prompt token, since start.
    public var decodeOnly: (tokens: Int, seconds: Double) { state.withLock { ($0.decodeOnlyTokens, $0.decodeOnlySeconds) } }

    func recordStep(generated: Int, seconds: Double, decodeOnly: Bool) {
        state.withLock { s in
            if decodeOnly {
                s.decodeOnlyTokens += generated
                s.decodeOnlySeconds += seconds
            }
            s.generatedTokens += generated
            s.stepSeconds += seconds
            s.steps += 1
            guard generated > 0 else { return }
            s.recentSteps.append((generated, seconds))
            if s.recentSteps.count > Self.rateWindow { s.recentSteps.removeFirst() }
        }
    }

    func setOccupancy(active: Int, queued: Int) {
        state.withLock { $0.active = active; $0.queued = queued }
    }

    var occupancy: (active: Int, queued: Int) { state.withLock { ($0.active, $0.queued) } }

    func requests(status: Int) -> Int { state.withLock { $0.requestsByStatus[status] ?? 0 } }

    /// Prometheus text exposition format (version 0.0.4).
    func prometheusText() -> String {
        let s = state.withLock { $0 }
        var out = ""
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(labels: String, value: String)]) {
            out += "# HELP \(name) \(help)\n# TYPE \(name) \(type)\n"
            for sample in samples { out += "\(name)\(sample.labels) \(sample.value)\n" }
        }
        metric("dsv2_requests_total", "counter", "HTTP responses sent, by status code.",
               s.requestsByStatus.keys.sorted().map { ("{status=\"\($0)\"}", String(s.requestsByStatus[$0]!)) })
        metric("dsv2_prompt_tokens_total", "counter", "Prompt tokens of admitted requests.", [("", String(s.promptTokens))])
        metric("dsv2_prompt_tokens_cached_total", "counter", "Prompt tokens reused from a cached prefix.",
               [("", String(s.cachedPromptTokens))])
        metric("dsv2_generated_tokens_total", "counter", "Tokens generated.", [("", String(s.generatedTokens))])
        metric("dsv2_requests_cancelled_total", "counter", "Generations dropped because their client went away.",
               [("", String(s.cancelled))])
        metric("dsv2_steps_total", "counter", "Batched forward steps run.", [("", String(s.steps))])
        metric("dsv2_step_seconds_total", "counter", "Seconds spent in batched forward steps.", [("", String(s.stepSeconds))])
        metric("dsv2_sequences_active", "gauge", "Sequences holding a slot.", [("", String(s.active))])
        metric("dsv2_sequences_queued", "gauge", "Requests waiting for a slot.", [("", String(s.queued))])
        let tokens = s.recentSteps.reduce(0) { $0 + $1.tokens }, seconds = s.recentSteps.reduce(0) { $0 + $1.seconds }
        metric("dsv2_decode_tokens_per_second", "gauge",
               "Tokens generated per second of step time over the last \(Self.rateWindow) generating steps.",
               [("", String(seconds > 0 ? Double(tokens) / seconds : 0))])
        return out
    }
}
