import DSV2Core
import Foundation
import XCTest

/// The router's rule on hand-made gate logits, where the right experts and weights are known.
final class ExpertRouterTests: XCTestCase {
    private func config(experts: Int, topK: Int, method: ModelConfig.TopkMethod = .greedy, groups: Int? = nil,
                        keptGroups: Int? = nil, normTopkProb: Bool = false, scaling: Float = 1) -> ModelConfig {
        ModelConfig(vocabSize: 16, hiddenSize: 8, intermediateSize: 8, moeIntermediateSize: 8, numHiddenLayers: 1,
                    numAttentionHeads: 1, qLoraRank: nil, kvLoraRank: 4, qkNopeHeadDim: 2, qkRopeHeadDim: 2, vHeadDim: 2,
                    ropeScaling: nil, maxPositionEmbeddings: 8, nSharedExperts: nil, nRoutedExperts: experts,
                    numExpertsPerTok: topK, routedScalingFactor: scaling, topkMethod: method, nGroup: groups,
                    topkGroup: keptGroups, firstKDenseReplace: 0, normTopkProb: normTopkProb)
    }

    private func route(_ logits: [Float], config: ModelConfig) throws -> (indices: [Int32], weights: [Float], scores: [Float]) {
        try config.validate()
        let router = ExpertRouter(config: config)
        let tokens = logits.count / router.experts
        var scores = logits
        var indices = [Int32](repeating: -1, count: tokens * router.topK)
        var weights = [Float](repeating: .nan, count: tokens * router.topK)
        router.route(logits: &scores, tokens: tokens, indices: &indices, weights: &weights)
        return (indices, weights, scores)
    }

    /// Largest first; equal scores go to the lower index; the weights are the softmax scores
    /// times routed_scaling_factor (exactly: one multiply each).
    func testGreedyTakesTheLargestTiesToTheLowerIndex() throws {
        let (indices, weights, scores) = try route([1, 3, 3, 0, 2, 3], config: config(experts: 6, topK: 3, scaling: 2.5))
        XCTAssertEqual(indices, [1, 2, 5])
        XCTAssertEqual(weights, [scores[1] * 2.5, scores[2] * 2.5, scores[5] * 2.5])
        XCTAssertEqual(scores.reduce(0, +), 1, accuracy: 1e-6, "the logits become softmax scores in place")
    }

    /// group_limited_greedy keeps the topk_group groups with the best single expert and zeroes the
    /// rest: here group 0 (expert 1, the best) is kept alone, so its weak expert 0 is chosen over
    /// experts 2 and 3 of group 1, which plain greedy would take.
    func testGroupLimitedKeepsTheBestGroupsOnly() throws {
        let logits: [Float] = [-3, 5, 4, 4, 0, 0, 0, 0]
        let grouped = try route(logits, config: config(experts: 8, topK: 2, method: .groupLimitedGreedy, groups: 4, keptGroups: 1))
        XCTAssertEqual(grouped.indices, [1, 0])
        let greedy = try route(logits, config: config(experts: 8, topK: 2))
        XCTAssertEqual(greedy.indices, [1, 2])
    }

    /// norm_topk_prob (top_k > 1): weights renormalised to sum 1, routed_scaling_factor ignored;
    /// two tokens are routed independently.
    func testNormTopkProbRenormalisesPerToken() throws {
        let (indices, weights, scores) = try route([0, 1, 2, 3, 3, 2, 1, 0],
                                                   config: config(experts: 4, topK: 2, normTopkProb: true, scaling: 16))
        XCTAssertEqual(indices, [3, 2, 0, 1])
        let first = scores[3] + scores[2], second = scores[4] + scores[5]
        XCTAssertEqual(weights, [scores[3] / (first + 1e-20), scores[2] / (first + 1e-20),
                                 scores[4] / (second + 1e-20), scores[5] / (second + 1e-20)])
        XCTAssertEqual(weights[0] + weights[1], 1, accuracy: 1e-6)
    }

    /// One router reused: each call starts from clean scratch (no expert stays taken, no group
    /// stays masked from the previous token).
    func testReusedRouterForgetsThePreviousCall() throws {
        let c = config(experts: 8, topK: 2, method: .groupLimitedGreedy, groups: 4, keptGroups: 1)
        try c.validate()
        let router = ExpertRouter(config: c)
        var indices = [Int32](repeating: 0, count: 2), weights = [Float](repeating: 0, count: 2)
        var first: [Float] = [9, 8, 0, 0, 0, 0, 0, 0]
        router.route(logits: &first, tokens: 1, indices: &indices, weights: &weights)
        XCTAssertEqual(indices, [0, 1])
        var second: [Float] = [0, 0, 0, 0, 0, 0, 8, 9]
        router.route(logits: &second, tokens: 1, indices: &indices, weights: &weights)
        XCTAssertEqual(indices, [7, 6])
    }
}
