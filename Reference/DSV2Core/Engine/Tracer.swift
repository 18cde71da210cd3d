import Foundation

/// A named intermediate tensor reported by an engine, row-major.
public struct TracedTensor: Sendable {
    public enum Values: Sendable {
        case float([Float])
        case int32([Int32])
    }
    public var shape: [Int]
    public var values: Values

    public init(shape: [Int], floats: [Float]) { self.shape = shape; values = .float(floats) }
    public init(shape: [Int], int32s: [Int32]) { self.shape = shape; values = .int32(int32s) }

    public var floats: [Float]? { if case let .float(v) = values { return v } else { return nil } }
    public var int32s: [Int32]? { if case let .int32(v) = values { return v } else { return nil } }
}

/// The one tracing hook through which engines report named intermediates of a forward pass.
///
/// The engine asks `wants(name)` before it copies anything, so an untraced or narrowly traced
/// run costs (almost) nothing; it then calls `record` with a fresh tensor. Names are those of
/// `TraceName`, identical in every engine, so `dsv2 compare` can line them up.
public protocol ForwardTracer: AnyObject {
    func wants(_ name: String) -> Bool
    func record(_ name: String, _ tensor: TracedTensor)
}

/// The names engines report (shapes for a call with T tokens).
public enum TraceName {
    /// `hidden.N` [T, hidden]: N = 0 after the embedding, N = l+1 after decoder layer l (before the final norm).
    public static func hidden(_ n: Int) -> String { "hidden.\(n)" }
    /// `attn.N` [T, hidden]: residual stream of layer N after the attention block.
    public static func attn(_ layer: Int) -> String { "attn.\(layer)" }
    /// `kv_latent.N` [T, kvLoraRank]: the normalised latent c_KV of layer N (after kv_a_layernorm).
    public static func kvLatent(_ layer: Int) -> String { "kv_latent.\(layer)" }
    /// `moe.N` [T, hidden]: the MoE (or dense MLP) block output of layer N, before the residual add.
    public static func moe(_ layer: Int) -> String { "moe.\(layer)" }
    /// `router.N.indices` Int32 [T, top-k]: experts chosen for each token (order unspecified; compare as sets).
    public static func routerIndices(_ layer: Int) -> String { "router.\(layer).indices" }
    /// `router.N.weights` [T, top-k]: weights paired with `routerIndices`.
    public static func routerWeights(_ layer: Int) -> String { "router.\(layer).weights" }
    /// `final_norm` [T, hidden]: model.norm of the last hidden state.
    public static let finalNorm = "final_norm"
    /// `logits` [rows, vocab]: the rows the call returns.
    public static let logits = "logits"

    /// The names the golden files hold (and `dsv2 dump` writes by default), as globs.
    public static let goldenPatterns = ["logits", "hidden.*", "attn.*", "final_norm", "router.*"]
}

/// A tracer that keeps every tensor whose name matches one of its shell-style globs
/// (`*`, `?`, `[…]`), in the order they were reported.
public final class RecordingTracer: ForwardTracer {
    public let patterns: [String]
    public private(set) var names: [String] = []
    public private(set) var tensors: [String: TracedTensor] = [:]

    public init(patterns: [String]) { self.patterns = patterns }

    public func wants(_ name: String) -> Bool {
        patterns.contains { fnmatch($0, name, 0) == 0 }
    }

    public func record(_ name: String, _ tensor: TracedTensor) {
        if tensors[name] == nil { names.append(name) }
        tensors[name] = tensor
    }

    public subscript(name: String) -> TracedTensor? { tensors[name] }
}
