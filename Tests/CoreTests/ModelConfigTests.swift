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

    /// The sizes whose products used to overflow or whose loops ran away (issue 15) are errors
    /// naming the field and the file, before anything is derived from them.
    func testHugeSizesAreBoundedErrors() throws {
        let cases: [(String, Int)] = [("num_attention_heads", 1 << 62), ("v_head_dim", 1 << 61), ("qk_rope_head_dim", 1 << 62),
                                      ("moe_intermediate_size", 1 << 62), ("num_hidden_layers", 1 << 40), ("n_routed_experts", 1 << 40),
                                      ("vocab_size", 1 << 40), ("hidden_size", 1 << 40), ("intermediate_size", 1 << 62),
                                      ("kv_lora_rank", 1 << 62), ("q_lora_rank", 1 << 62), ("qk_nope_head_dim", 1 << 62),
                                      ("max_position_embeddings", 1 << 62), ("n_shared_experts", 1 << 62),
                                      ("moe_layer_freq", 1 << 62), ("first_k_dense_replace", 1 << 62),
                                      ("num_hidden_layers", -1), ("qk_nope_head_dim", -1)]
        for (field, value) in cases {
            var json = try fixtureJSON()
            json[field] = value
            try assertRejected(json, field: field, mentioning: "\(value)")
        }
    }

    /// Each field within its limit but the model too large as a whole: the walk stops at the
    /// tensor or parameter budget at once instead of building millions of names.
    func testModelSizeBudgets() throws {
        var json = try fixtureJSON()
        json["num_hidden_layers"] = ModelConfig.Limits.layers
        json["n_routed_experts"] = ModelConfig.Limits.routedExperts
        let start = Date()
        try assertRejected(json, field: "n_routed_experts", mentioning: "tensors")
        XCTAssertLessThan(Date().timeIntervalSince(start), 10, "the budget stops the walk early")

        json = try fixtureJSON()
        json["hidden_size"] = ModelConfig.Limits.hiddenSize
        json["moe_intermediate_size"] = ModelConfig.Limits.intermediateSize   // 16 experts of 3·2^40 per layer
        let dir = TemporaryDirectory()
        try JSONSerialization.data(withJSONObject: json).write(to: dir.file("config.json"))
        XCTAssertThrowsError(try ModelConfig.load(from: dir.url)) { error in
            let message = "\(error)"
            XCTAssertTrue(message.contains(dir.file("config.json").path) && message.contains("parameters"), message)
        }
    }

    /// rope_scaling values that give a non-finite or non-positive scale name the key.
    func testRopeScalingScalesMustBeFiniteAndPositive() throws {
        let cases: [(String, Any, String)] = [("mscale", -1e308, "rope_scaling.mscale"), ("mscale", -100.0, "rope_scaling.mscale"),
                                              ("mscale_all_dim", 1e300, "rope_scaling.mscale_all_dim"),
                                              ("mscale_all_dim", -30.0, "rope_scaling.mscale_all_dim"),
                                              ("factor", 1e300, "rope_scaling.factor"), ("beta_fast", 0.0, "rope_scaling.beta_fast"),
                                              ("beta_slow", -1.0, "rope_scaling.beta_slow"),
                                              ("original_max_position_embeddings", 1 << 62, "rope_scaling.original_max_position_embeddings")]
        for (key, value, field) in cases {
            var json = try fixtureJSON("lite-greedy")
            var scaling = try XCTUnwrap(json["rope_scaling"] as? [String: Any])
            scaling[key] = value
            json["rope_scaling"] = scaling
            try assertRejected(json, field: field, mentioning: "must")
        }
        var json = try fixtureJSON("lite-greedy")
        json["rope_theta"] = 1.0   // YaRN divides by ln(rope_theta)
        try assertRejected(json, field: "rope_theta", mentioning: "greater than 1")
        json["rope_theta"] = 1e300
        try assertRejected(json, field: "rope_theta", mentioning: "at most")
        json = try fixtureJSON("lite-greedy")
        json["rms_norm_eps"] = 0
        try assertRejected(json, field: "rms_norm_eps", mentioning: "positive")
    }

    /// The limits are far above the real models: both real configs pass, with room to spare.
    func testRealConfigsAreFarBelowTheLimits() throws {
        let data = try Data(contentsOf: Fixtures.url("real-config-constants.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [String: [String: Any]])
        let full = try ModelConfig.decode(JSONSerialization.data(withJSONObject: try XCTUnwrap(models["DeepSeek-V2"]?["config"])))
        XCTAssertLessThan(full.parameterCount * 100, ModelConfig.Limits.parameters)
        XCTAssertLessThan(full.expectedTensorShapes().count * 30, ModelConfig.Limits.tensors)
        XCTAssertLessThan(full.hiddenSize * 30, ModelConfig.Limits.hiddenSize)
        XCTAssertLessThan(full.maxPositionEmbeddings * 100, ModelConfig.Limits.positions)
    }

    /// The tensor-table rule of every loader (`tensorTableMismatch`): tied lm_head, shared experts.
    func testTensorTableRules() throws {
        let config = try ModelConfig.load(from: Fixtures.url("lite-greedy"))
        var shapes = Dictionary(uniqueKeysWithValues: config.expectedTensorShapes().map { ($0.name, $0.shape) })
        XCTAssertNil(config.tensorTableMismatch(names: shapes.keys, shape: { shapes[$0] }))
        shapes["model.layers.0.mlp.extra.weight"] = [1]
        XCTAssertEqual(config.tensorTableMismatch(names: shapes.keys, shape: { shapes[$0] })?.tensor, "model.layers.0.mlp.extra.weight")

        // tie_word_embeddings: lm_head.weight is not expected, and one present is an error.
        var tied = config
        tied.tieWordEmbeddings = true
        var tiedShapes = Dictionary(uniqueKeysWithValues: tied.expectedTensorShapes().map { ($0.name, $0.shape) })
        XCTAssertNil(tiedShapes[CheckpointNames.lmHead])
        XCTAssertNil(tied.tensorTableMismatch(names: tiedShapes.keys, shape: { tiedShapes[$0] }))
        tiedShapes[CheckpointNames.lmHead] = [config.vocabSize, config.hiddenSize]
        guard case let .unexpected(tensor, reason)? = tied.tensorTableMismatch(names: tiedShapes.keys, shape: { tiedShapes[$0] }) else {
            return XCTFail("a tied lm_head.weight must be an error")
        }
        XCTAssertEqual(tensor, CheckpointNames.lmHead)
        XCTAssertTrue(reason.contains("tie_word_embeddings"), reason)

        // n_shared_experts 0: no shared experts; only DeepSeek's empty tensors are accepted.
        var noShared = config
        noShared.nSharedExperts = 0
        var noSharedShapes = Dictionary(uniqueKeysWithValues: noShared.expectedTensorShapes().map { ($0.name, $0.shape) })
        XCTAssertFalse(noSharedShapes.keys.contains { $0.contains("shared_experts") })
        let n = CheckpointNames.layer(1), h = config.hiddenSize
        noSharedShapes[n.sharedGateProj] = [0, h]
        noSharedShapes[n.sharedUpProj] = [0, h]
        noSharedShapes[n.sharedDownProj] = [h, 0]
        XCTAssertNil(noShared.tensorTableMismatch(names: noSharedShapes.keys, shape: { noSharedShapes[$0] }))
        noSharedShapes[n.sharedUpProj] = [config.moeIntermediateSize, h]
        XCTAssertEqual(noShared.tensorTableMismatch(names: noSharedShapes.keys, shape: { noSharedShapes[$0] }),
                       .unexpected(tensor: n.sharedUpProj, reason: "n_shared_experts is 0, so DeepSeek's code has a shared-experts MLP of width 0 here and accepts only an empty tensor ([0, hidden_size] or [hidden_size, 0])"))
        // null: no module at all, so even an empty tensor is unexpected.
        var nullShared = noShared
        nullShared.nSharedExperts = nil
        noSharedShapes[n.sharedUpProj] = [0, h]
        XCTAssertEqual(nullShared.tensorTableMismatch(names: noSharedShapes.keys, shape: { noSharedShapes[$0] })?.tensor.contains("shared_experts"), true)
    }
}
