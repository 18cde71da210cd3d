/// The DeepSeek-V2 MoE gate's selection rule (`MoEGate` of DeepSeek's modeling_deepseek.py), the
/// one both engines run so they route identically:
///
/// 1. softmax over all routed experts of the fp32 gate logits;
/// 2. `group_limited_greedy` only: a group's score is the max of its experts (V3's sum of the top
///    two is not V2), the `topk_group` best groups are kept and the other experts' scores are set
///    to 0 (not −inf, as the original does);
/// 3. the `num_experts_per_tok` largest scores, largest first, ties to the lower index (the
///    original's `topk(sorted=False)` leaves the order unspecified, so only the set is normative);
/// 4. top_k > 1 with norm_topk_prob: w / (Σw + 1e-20), without the scaling factor; otherwise
///    w × routed_scaling_factor.
///
/// The scratch is allocated once here, so a router kept across calls (one per engine workspace)
/// routes without allocating. Not thread-safe: one router per concurrent caller.
public final class ExpertRouter {
    public let experts: Int
    public let topK: Int
    /// n_group and topk_group for group_limited_greedy; 0 and 0 for greedy.
    private let groupCount: Int
    private let keptGroups: Int
    private let normalizes: Bool
    private let scalingFactor: Float

    private let candidates: UnsafeMutablePointer<Float>   // [experts]: scores after group masking
    private let groupScores: UnsafeMutablePointer<Float>  // [groupCount]
    private let taken: UnsafeMutablePointer<Bool>         // [max(experts, groupCount)]
    private let takenCapacity: Int

    public init(config: ModelConfig) {
        experts = config.routedExpertCount
        topK = config.expertsPerToken
        if config.topkMethod == .groupLimitedGreedy, let nGroup = config.nGroup, let topkGroup = config.topkGroup {
            groupCount = nGroup
            keptGroups = topkGroup
        } else {
            groupCount = 0
            keptGroups = 0
        }
        normalizes = topK > 1 && config.normTopkProb
        scalingFactor = config.routedScalingFactor
        candidates = .allocate(capacity: max(1, experts))
        groupScores = .allocate(capacity: max(1, groupCount))
        takenCapacity = max(1, experts, groupCount)
        taken = .allocate(capacity: takenCapacity)
        taken.initialize(repeating: false, count: takenCapacity)
    }

    deinit {
        candidates.deallocate()
        groupScores.deallocate()
        taken.deallocate()
    }

    /// Bytes of scratch this router holds.
    public var scratchBytes: Int { (max(1, experts) + max(1, groupCount)) * 4 + takenCapacity }

    /// Routes `tokens` rows of gate logits [tokens, experts] (`mlp.gate.weight` · x), turning them
    /// into softmax scores in place; writes the chosen experts and their weights, [tokens, topK] each.
    public func route(logits: UnsafeMutablePointer<Float>, tokens: Int,
                      indices: UnsafeMutablePointer<Int32>, weights: UnsafeMutablePointer<Float>) {
        for t in 0..<tokens {
            let row = logits + t * experts
            Elementwise.softmax(row, count: experts)
            candidates.update(from: row, count: experts)
            if groupCount > 0 {
                let groupSize = experts / groupCount
                for g in 0..<groupCount {
                    var m = candidates[g * groupSize]
                    for e in g * groupSize ..< (g + 1) * groupSize where candidates[e] > m { m = candidates[e] }
                    groupScores[g] = m
                }
                taken.update(repeating: false, count: groupCount)
                for _ in 0..<keptGroups { taken[best(groupScores, count: groupCount)] = true }
                for g in 0..<groupCount where !taken[g] {
                    for e in g * groupSize ..< (g + 1) * groupSize { candidates[e] = 0 }
                }
            }
            taken.update(repeating: false, count: experts)
            let chosen = indices + t * topK, chosenWeights = weights + t * topK
            var sum: Float = 0
            for slot in 0..<topK {
                let e = best(candidates, count: experts)
                taken[e] = true
                chosen[slot] = Int32(e)
                chosenWeights[slot] = candidates[e]
                sum += candidates[e]
            }
            for slot in 0..<topK {
                if normalizes {
                    chosenWeights[slot] /= sum + 1e-20
                } else {
                    chosenWeights[slot] *= scalingFactor
                }
            }
        }
    }

    /// Index of the largest value among `count` not yet taken (ties: the lowest index). Picking
    /// k times this way gives the top k in order without sorting or allocating.
    @inline(__always)
    private func best(_ values: UnsafeMutablePointer<Float>, count: Int) -> Int {
        var chosen = -1
        for i in 0..<count where !taken[i] && (chosen < 0 || values[i] > values[chosen]) { chosen = i }
        return chosen
    }
}
