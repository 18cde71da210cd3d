import DSV2Core
import Foundation
import TestSupport
import XCTest

final class ModelConfigTests: XCTestCase {
    private func fixtureJSON(_ name: String = "v2-grouped") throws -> [String: Any] {
        let data = try Data(contentsOf: Fixtures.url("\(name)/config.json"))
        return try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    /// Writes `json` as config.json in a temp folder and loads it, expecting an error on `field`.
    private func assertRejected(_ json: [String: Any], field: String, mentioning word: String,
                                file: StaticString = #filePath, line: UInt = #line) throws {
        let dir = TemporaryDirectory()
        let url = dir.file("config.json")
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        XCTAssertThrowsError(try ModelConfig.load(from: dir.url), file: file, line: line) { error in
            guard let error = error as? ModelConfigError else { return XCTFail("untyped \(error)", file: file, line: line) }
            XCTAssertEqual(error.field, field, file: file, line: line)
            XCTAssertEqual(error.file, url.path, file: file, line: line)
            XCTAssertTrue(error.description.contains(field) && error.description.contains(word) && error.description.contains(url.path),
                          error.description, file: file, line: line)
        }
    }

    func testUnsupportedValuesNameTheirField() throws {
        var json = try fixtureJSON()
        json["rope_scaling"] = ["type": "linear", "factor": 2.0]
        try assertRejected(json, field: "rope_scaling.type", mentioning: "linear")

        json = try fixtureJSON()
        json["topk_method"] = "gready"
        try assertRejected(json, field: "topk_method", mentioning: "gready")
        json.removeValue(forKey: "topk_method")
        try assertRejected(json, field: "topk_method", mentioning: "missing")

        json = try fixtureJSON()
        json["hidden_act"] = "gelu"
        try assertRejected(json, field: "hidden_act", mentioning: "gelu")

        json = try fixtureJSON()
        json["scoring_func"] = "sigmoid"
        try assertRejected(json, field: "scoring_func", mentioning: "sigmoid")

        json = try fixtureJSON()
        json.removeValue(forKey: "q_lora_rank")
        try assertRejected(json, field: "q_lora_rank", mentioning: "null")

        json = try fixtureJSON()
        json["n_group"] = 3
        try assertRejected(json, field: "n_group", mentioning: "divide")

        json = try fixtureJSON()
        json["hidden_size"] = "64"
        try assertRejected(json, field: "hidden_size", mentioning: "type")

        json = try fixtureJSON()
        json["qk_rope_head_dim"] = 7
        try assertRejected(json, field: "qk_rope_head_dim", mentioning: "even")
    }

    func testMissingFileIsAnError() {
        XCTAssertThrowsError(try ModelConfig.load(from: URL(fileURLWithPath: "/nonexistent/dsv2"))) { error in
            XCTAssertTrue("\(error)".contains("/nonexistent/dsv2"))
        }
    }

    func testFixturesDecodeAndRoundTrip() throws {
        let lite = try ModelConfig.load(from: Fixtures.url("lite-greedy"))
        XCTAssertNil(lite.qLoraRank)
        XCTAssertEqual(lite.topkMethod, .greedy)
        XCTAssertEqual(lite.ropeScaling?.factor, 40)
        XCTAssertEqual(lite.moeLayers, [1, 2, 3])
        XCTAssertEqual(lite.latentCacheWidth, 40)
        XCTAssertEqual(lite.eosTokenIds, [1])
        let norope = try ModelConfig.load(from: Fixtures.url("lite-fp32-norope"))
        XCTAssertNil(norope.ropeScaling)
        XCTAssertEqual(norope.moeLayers, [2, 3])
        let grouped = try ModelConfig.load(from: Fixtures.url("v2-grouped"))
        XCTAssertEqual(grouped.qLoraRank, 48)
        XCTAssertEqual(grouped.topkMethod, .groupLimitedGreedy)
        for config in [lite, norope, grouped] {
            let again = try JSONDecoder().decode(ModelConfig.self, from: JSONEncoder().encode(config))
            XCTAssertEqual(again, config)
        }
    }

    /// The shapes the config implies are exactly the fixture checkpoints' tensors.
    func testExpectedTensorShapesMatchTheFixtures() throws {
        for name in Fixtures.modelCases {
            let config = try ModelConfig.load(from: Fixtures.url(name))
            let checkpoint = try SafetensorsCheckpoint(url: Fixtures.url(name))
            let expected = config.expectedTensorShapes()
            XCTAssertEqual(Set(expected.map(\.name)), Set(checkpoint.tensorNames), name)
            for (tensor, shape) in expected {
                XCTAssertEqual(try checkpoint.info(tensor).shape, shape, "\(name): \(tensor)")
            }
        }
    }

    /// Parameter counts of the real configs: 15.7B (V2-Lite) and 236B (V2), as published.
    func testRealParameterCounts() throws {
        let data = try Data(contentsOf: Fixtures.url("real-config-constants.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [String: [String: Any]])
        func config(_ name: String) throws -> ModelConfig {
            try ModelConfig.decode(JSONSerialization.data(withJSONObject: try XCTUnwrap(models[name]?["config"])))
        }
        let lite = try config("DeepSeek-V2-Lite"), full = try config("DeepSeek-V2")
        XCTAssertEqual(Double(lite.parameterCount) / 1e9, 15.7, accuracy: 0.1)
        XCTAssertEqual(Double(full.parameterCount) / 1e9, 236, accuracy: 1)
        XCTAssertEqual(lite.expectedTensorShapes().first { $0.name == "model.layers.1.mlp.experts.63.down_proj.weight" }?.shape, [2048, 1408])
        XCTAssertEqual(full.expectedTensorShapes().first { $0.name == "model.layers.0.self_attn.q_b_proj.weight" }?.shape, [128 * 192, 1536])
    }

    /// intermediate_size is required exactly when some layer is dense; validate() decides that in
    /// closed form (a fuzzer's num_hidden_layers of 2^40 made the walk over the layers hang).
    func testDenseLayerRequirementMatchesTheLayerWalk() throws {
        for experts in [nil, 4] as [Int?] {
            for layers in 1...6 {
                for firstDense in 0...7 {
                    for frequency in 1...4 {
                        let config = ModelConfig(vocabSize: 8, hiddenSize: 8, intermediateSize: 0, moeIntermediateSize: 8,
                                                 numHiddenLayers: layers, numAttentionHeads: 1, qLoraRank: nil, kvLoraRank: 4,
                                                 qkNopeHeadDim: 2, qkRopeHeadDim: 2, vHeadDim: 2, ropeScaling: nil,
                                                 maxPositionEmbeddings: 8, nSharedExperts: nil, nRoutedExperts: experts,
                                                 numExpertsPerTok: experts.map { _ in 2 }, moeLayerFreq: frequency,
                                                 firstKDenseReplace: firstDense, normTopkProb: false)
                        let someDense = (0..<layers).contains(where: config.isDenseLayer)
                        XCTAssertEqual((try? config.validate()) == nil, someDense, "\(layers) layers, first_k_dense \(firstDense), freq \(frequency)")
                    }
                }
            }
        }
        var huge = ModelConfig(vocabSize: 8, hiddenSize: 8, intermediateSize: 8, moeIntermediateSize: 8,
                               numHiddenLayers: 1 << 40, numAttentionHeads: 1, qLoraRank: nil, kvLoraRank: 4,
                               qkNopeHeadDim: 2, qkRopeHeadDim: 2, vHeadDim: 2, ropeScaling: nil, maxPositionEmbeddings: 8,
                               nSharedExperts: nil, nRoutedExperts: 4, numExpertsPerTok: 2, firstKDenseReplace: 1, normTopkProb: false)
        XCTAssertNoThrow(try huge.validate())
        huge.intermediateSize = 0
        XCTAssertThrowsError(try huge.validate())
    }
}
