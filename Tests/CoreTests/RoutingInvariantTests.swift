import DSV2Core
import DSV2Reference
import Foundation
import XCTest

/// Invariants of the router and of configs without MoE, on small random models built in memory.
final class RoutingInvariantTests: XCTestCase {
    private func smallConfig(topkMethod: ModelConfig.TopkMethod = .groupLimitedGreedy, normTopkProb: Bool = false,
                             routed: Int? = 16, tied: Bool = false) -> ModelConfig {
        ModelConfig(vocabSize: 97, hiddenSize: 32, intermediateSize: 48, moeIntermediateSize: 16,
                    numHiddenLayers: 3, numAttentionHeads: 2, qLoraRank: 24, kvLoraRank: 16,
                    qkNopeHeadDim: 8, qkRopeHeadDim: 4, vHeadDim: 12, ropeScaling: nil, maxPositionEmbeddings: 64,
                    nSharedExperts: 1, nRoutedExperts: routed, numExpertsPerTok: routed == nil ? nil : 3,
                    routedScalingFactor: 16, topkMethod: topkMethod, nGroup: 4, topkGroup: 2,
                    firstKDenseReplace: 1, normTopkProb: normTopkProb, tieWordEmbeddings: tied)
    }

    private func run(_ config: ModelConfig, tokens: Int = 40) throws -> RecordingTracer {
        try config.validate()
        let model = ReferenceModel(config: config, weights: .random(config: config, seed: 7))
        let tracer = RecordingTracer(patterns: ["router.*", "logits"])
        let ids = (0..<tokens).map { Int32(($0 * 37 + 11) % config.vocabSize) }
        _ = try model.forward(tokens: ids, logits: .all, tracer: tracer)
        return tracer
    }

    /// group_limited_greedy picks experts from at most topk_group groups of n_routed/n_group.
    func testGroupLimitedRoutingStaysInTheKeptGroups() throws {
        let config = smallConfig()
        let tracer = try run(config)
        let groupSize = 16 / 4
        var groupsSeen = Set<Int>()
        for l in config.moeLayers {
            let indices = try XCTUnwrap(tracer[TraceName.routerIndices(l)]?.int32s)
            let weights = try XCTUnwrap(tracer[TraceName.routerWeights(l)]?.floats)
            for t in 0..<40 {
                let chosen = indices[t * 3 ..< t * 3 + 3].map(Int.init)
                XCTAssertEqual(Set(chosen).count, 3, "distinct experts")
                let groups = Set(chosen.map { $0 / groupSize })
                XCTAssertLessThanOrEqual(groups.count, 2)
                groupsSeen.formUnion(groups)
                // Without norm_topk_prob: softmax probabilities × routed_scaling_factor (16), so in (0, 16].
                for w in weights[t * 3 ..< t * 3 + 3] { XCTAssertTrue(w > 0 && w <= 16) }
            }
        }
        XCTAssertEqual(groupsSeen.count, 4, "random weights should spread the routing over every group")
    }

    /// norm_topk_prob renormalises the top-k weights to sum 1 and ignores routed_scaling_factor.
    func testNormTopkProbWeightsSumToOne() throws {
        let config = smallConfig(topkMethod: .greedy, normTopkProb: true)
        let tracer = try run(config)
        for l in config.moeLayers {
            let weights = try XCTUnwrap(tracer[TraceName.routerWeights(l)]?.floats)
            for t in 0..<40 {
                XCTAssertEqual(weights[t * 3 ..< t * 3 + 3].reduce(0, +), 1, accuracy: 1e-6)
            }
        }
    }

    /// n_routed_experts null means every layer is a dense MLP; tied embeddings need no lm_head.
    func testDenseOnlyAndTiedConfigs() throws {
        let dense = smallConfig(routed: nil, tied: true)
        XCTAssertEqual(dense.moeLayers, [])
        let names = dense.expectedTensorShapes().map(\.name)
        XCTAssertFalse(names.contains { $0.contains("mlp.gate.weight") || $0.contains("experts") })
        XCTAssertFalse(names.contains(CheckpointNames.lmHead))
        let tracer = try run(dense)
        XCTAssertTrue(tracer.names.filter { $0.hasPrefix("router") }.isEmpty)
        XCTAssertTrue(try XCTUnwrap(tracer["logits"]?.floats).allSatisfy(\.isFinite))
    }
}
