import Foundation
import DSV2Core

/// Orders traced tensor names the way the forward pass computes them, so the first tensor that
/// breaks a threshold is where a deviation starts:
///
///   input_ids, hidden.0, kv_latent.0, attn.0, router.0.indices, router.0.weights, moe.0, hidden.1,
///   kv_latent.1, …, hidden.L, final_norm, logits, then any other name (alphabetically).
///
/// `hidden.N` (N ≥ 1) is the output of layer N−1, i.e. the input of layer N, so it sorts with layer N.
public enum TraceOrder {
    /// A sort key: (group, layer, step, name). Group 0 = inputs, 1 = layers, 2 = head, 3 = other.
    public struct Key: Comparable {
        let group: Int, layer: Int, step: Int, name: String
        public static func < (l: Key, r: Key) -> Bool {
            (l.group, l.layer, l.step, l.name) < (r.group, r.layer, r.step, r.name)
        }
    }

    public static func key(_ name: String) -> Key {
        switch name {
        case "input_ids": return Key(group: 0, layer: 0, step: 0, name: name)
        case TraceName.finalNorm: return Key(group: 2, layer: 0, step: 0, name: name)
        case TraceName.logits: return Key(group: 2, layer: 0, step: 1, name: name)
        default: break
        }
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        if parts.count >= 2, let layer = Int(parts[1]), layer >= 0 {
            let step: Int?
            switch (parts[0], parts.count) {
            case ("hidden", 2): step = 0
            case ("kv_latent", 2): step = 1
            case ("attn", 2): step = 2
            case ("router", 3): step = parts[2] == "indices" ? 3 : 4
            case ("moe", 2): step = 5
            default: step = nil
            }
            if let step { return Key(group: 1, layer: layer, step: step, name: name) }
        }
        // decode_logits, generated_ids, anything new: after the forward pass, by name.
        return Key(group: 3, layer: 0, step: 0, name: name)
    }

    /// `names` sorted in forward-pass order.
    public static func sorted<S: Sequence>(_ names: S) -> [String] where S.Element == String {
        names.map { ($0, key($0)) }.sorted { $0.1 < $1.1 }.map(\.0)
    }

    /// The layer a `router.N.indices` / `router.N.weights` name belongs to.
    public static func routerLayer(_ name: String) -> Int? {
        let parts = name.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "router", parts[2] == "indices" || parts[2] == "weights" else { return nil }
        return Int(parts[1])
    }
}
