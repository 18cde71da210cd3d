import Foundation
import DSV2Core

extension MLPWeights where Matrix == DSV2Reference.Matrix {
    /// down(silu(gate(x)) · up(x)) for `tokens` rows of x [tokens, hidden] → [tokens, hidden].
    func forward(_ x: [Float], tokens: Int) -> [Float] {
        var gate = gateProj.apply(x, tokens: tokens)  // [tokens, intermediate]
        let up = upProj.apply(x, tokens: tokens)      // [tokens, intermediate]
        gate.withUnsafeMutableBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                for i in 0..<g.count { g[i] = Elementwise.silu(g[i]) * u[i] }
            }
        }
        return downProj.apply(gate, tokens: tokens)   // [tokens, hidden]
    }
}

/// The experts chosen for each token by the MoE gate, [tokens, topK] each.
public struct Routing: Sendable {
    public let topK: Int
    /// Expert of each (token, slot), largest score first (the original's order is unspecified).
    public var indices: [Int32]
    /// Weight of each (token, slot), after renormalisation or routed_scaling_factor.
    public var weights: [Float]
}

/// DeepSeekMoE (paper section 2.2): shared experts plus the top-k routed experts of a softmax gate.
struct MixtureOfExperts {
    let config: ModelConfig
    let weights: MoEWeights<Matrix>

    /// The gate: a bias-free fp32 linear layer, then `ExpertRouter`, the selection rule the
    /// quantized engine runs too.
    func route(_ x: [Float], tokens: Int) -> Routing {
        let router = ExpertRouter(config: config), topK = router.topK
        guard tokens > 0 else { return Routing(topK: topK, indices: [], weights: []) }
        var scores = weights.router.apply(x, tokens: tokens)  // [tokens, nRoutedExperts]
        var indices = [Int32](repeating: 0, count: tokens * topK)
        var chosenWeights = [Float](repeating: 0, count: tokens * topK)
        scores.withUnsafeMutableBufferPointer { s in
            indices.withUnsafeMutableBufferPointer { i in
                chosenWeights.withUnsafeMutableBufferPointer { w in
                    router.route(logits: s.baseAddress!, tokens: tokens, indices: i.baseAddress!, weights: w.baseAddress!)
                }
            }
        }
        return Routing(topK: topK, indices: indices, weights: chosenWeights)
    }

    /// y = Σ_k w_k · expert_k(x) + shared(x) (docs/NUMERICS.md item 11), with the routed experts run
    /// as batches of the tokens routed to them.
    func forward(_ x: [Float], tokens: Int, routing: Routing) -> [Float] {
        let hidden = config.hiddenSize, topK = routing.topK
        // perSlot[t, k] = w_k · expert_k(x_t); summed over k in slot order like the original.
        var perSlot = [Float](repeating: 0, count: tokens * topK * hidden)
        var assignments = [[Int]](repeating: [], count: config.routedExpertCount)  // expert → (t·topK + slot)
        for (position, e) in routing.indices.enumerated() { assignments[Int(e)].append(position) }
        for (e, positions) in assignments.enumerated() where !positions.isEmpty {
            var batch = [Float](repeating: 0, count: positions.count * hidden)  // [routed tokens, hidden]
            for (r, position) in positions.enumerated() {
                let t = position / topK
                for i in 0..<hidden { batch[r * hidden + i] = x[t * hidden + i] }
            }
            let out = weights.experts[e].forward(batch, tokens: positions.count)
            for (r, position) in positions.enumerated() {
                let w = routing.weights[position]
                for i in 0..<hidden { perSlot[position * hidden + i] = out[r * hidden + i] * w }
            }
        }
        var y = [Float](repeating: 0, count: tokens * hidden)
        for t in 0..<tokens {
            for slot in 0..<topK {
                let base = (t * topK + slot) * hidden
                for i in 0..<hidden { y[t * hidden + i] += perSlot[base + i] }
            }
        }
        if let shared = weights.sharedExperts {
            addInPlace(&y, shared.forward(x, tokens: tokens))
        }
        return y
    }
}
