import Foundation
import DSV2Core

extension MLPWeights {
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

/// The DeepSeek-V2 MoE gate's selection rule, shared by every engine so they route identically
/// (docs/NUMERICS.md items 8-10): softmax over all routed experts of the fp32 gate logits; greedy or
/// group-limited top-k; then renormalise (top_k > 1 and norm_topk_prob, without the scaling
/// factor) or multiply by routed_scaling_factor.
public enum ExpertRouting {
    /// Routes `tokens` rows of gate logits [tokens, nRoutedExperts] (`mlp.gate.weight` · x).
    public static func route(gateLogits: [Float], tokens: Int, config: ModelConfig) -> Routing {
        let experts = config.routedExpertCount, topK = config.expertsPerToken
        precondition(gateLogits.count == tokens * experts, "gate logits must be [tokens, n_routed_experts]")
        var scores = gateLogits
        var indices = [Int32](repeating: 0, count: tokens * topK)
        var chosenWeights = [Float](repeating: 0, count: tokens * topK)
        var candidate = [Float](repeating: 0, count: experts)
        scores.withUnsafeMutableBufferPointer { sp in
            for t in 0..<tokens {
                let row = sp.baseAddress! + t * experts
                Elementwise.softmax(row, count: experts)
                for e in 0..<experts { candidate[e] = row[e] }
                if config.topkMethod == .groupLimitedGreedy, let nGroup = config.nGroup, let topkGroup = config.topkGroup {
                    // Group score = max of its experts (V3's sum-of-top-2 is not V2); keep the
                    // topk_group best groups and zero (not −inf) the others' scores.
                    let groupSize = experts / nGroup
                    let groupScores = (0..<nGroup).map { g in candidate[g * groupSize ..< (g + 1) * groupSize].max()! }
                    let kept = Set(topIndices(groupScores, count: topkGroup))
                    for g in 0..<nGroup where !kept.contains(g) {
                        for e in g * groupSize ..< (g + 1) * groupSize { candidate[e] = 0 }
                    }
                }
                let chosen = topIndices(candidate, count: topK)
                var sum: Float = 0
                for (slot, e) in chosen.enumerated() {
                    indices[t * topK + slot] = Int32(e)
                    chosenWeights[t * topK + slot] = candidate[e]
                    sum += candidate[e]
                }
                for slot in 0..<topK {
                    if topK > 1 && config.normTopkProb {
                        chosenWeights[t * topK + slot] /= sum + 1e-20
                    } else {
                        chosenWeights[t * topK + slot] *= config.routedScalingFactor
                    }
                }
            }
        }
        return Routing(topK: topK, indices: indices, weights: chosenWeights)
    }

    /// Indices of the `count` largest values, largest first (ties: lower index first). The
    /// original's order is unspecified (`topk(sorted=False)`), so only the set matters.
    static func topIndices(_ values: [Float], count: Int) -> [Int] {
        Array(values.indices.sorted { values[$0] > values[$1] || (values[$0] == values[$1] && $0 < $1) }.prefix(count))
    }
}

/// DeepSeekMoE (paper section 2.2): shared experts plus the top-k routed experts of a softmax gate.
struct MixtureOfExperts {
    let config: ModelConfig
    let weights: MoEWeights

    /// The gate: a bias-free fp32 linear layer, then `ExpertRouting`.
    func route(_ x: [Float], tokens: Int) -> Routing {
        ExpertRouting.route(gateLogits: weights.router.apply(x, tokens: tokens), tokens: tokens, config: config)
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
