import XCTest
import TestSupport

/// `dsv2 bench --json` on a tiny synthetic model: every tracked field present, values sane.
/// (Speed itself is never asserted in unit tests.)
final class BenchModelCommandTests: XCTestCase {
    static let requiredFields = ["decode_tokens_per_second", "prefill_tokens_per_second", "time_to_first_token_seconds",
                                 "peak_rss_bytes", "kv_bytes_per_token", "weight_bytes_per_token",
                                 "read_bandwidth_bytes_per_second", "roofline_fraction", "threads", "depth", "prompt_tokens"]

    /// A q8 container of v2-grouped's shapes in a fresh folder (removed when `folder` goes away).
    private func synthModel() throws -> (folder: TemporaryDirectory, model: URL) {
        let folder = TemporaryDirectory(prefix: "dsv2-synth")
        let model = folder.file("m.dsv2")
        let synth = try DSV2Process.run(["synth", "--preset", Fixtures.url("v2-grouped/config.json").path, "--quant", "q8",
                                         "--quiet", "-o", model.path])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        return (folder, model)
    }

    func testQuantizedJSONReport() throws {
        let synthesized = try synthModel(), model = synthesized.model
        let results = try bench(["bench", "--model", model.path, "--prompt-tokens", "4,8", "-n", "3",
                                 "--threads", "1,2", "--repetitions", "1", "--json"], expectedResults: 4)
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("v2-grouped/config.json"))) as! [String: Any]
        let layers = config["num_hidden_layers"] as! Int, kvLora = config["kv_lora_rank"] as! Int, rope = config["qk_rope_head_dim"] as! Int
        for r in results {
            // The engine's latent cache: (kv_lora + qk_rope) f16 values per layer.
            XCTAssertEqual(r["kv_bytes_per_token"] as? Int, (kvLora + rope) * layers * 2)
            // heads × (nope + rope + v) × layers × 2 = 4 × 40 × 4 × 2.
            XCTAssertEqual(r["kv_bytes_per_token_expanded_f16"] as? Int, 1280)
        }
        XCTAssertEqual(Set(results.map { "\($0["threads"]!)/\($0["prompt_tokens"]!)" }), ["1/4", "1/8", "2/4", "2/8"])
    }

    func testReferenceEngineOnHuggingFaceFolder() throws {
        let folder = TemporaryDirectory(prefix: "dsv2-synth")
        let model = folder.file("hf")
        let synth = try DSV2Process.run(["synth", "--preset", Fixtures.url("v2-grouped/config.json").path, "--format", "hf",
                                     "--quiet", "-o", model.path])
        XCTAssertEqual(synth.status, 0, synth.stderr)
        let results = try bench(["bench", "model", "--model", model.path, "--engine", "reference", "--prompt-tokens", "5",
                                 "-n", "2", "--threads", "1", "--repetitions", "2", "--json"], expectedResults: 1)
        XCTAssertEqual(results[0]["repetitions"] as? Int, 2)
        // A given bandwidth replaces the probe.
        let given = try bench(["bench", "--model", model.path, "--engine", "reference", "--prompt-tokens", "3", "-n", "1",
                               "--threads", "1", "--repetitions", "1", "--read-bandwidth", "1:10", "--json"], expectedResults: 1)
        XCTAssertEqual(given[0]["read_bandwidth_bytes_per_second"] as? Double, 10e9)
        // The reference reads its fp32 weights: every weight byte per token ≥ 4 × one expert's 3 matrices.
        XCTAssertGreaterThan(results[0]["weight_bytes_per_token"] as? Int ?? 0, 4 * 3 * 32 * 64)
        // A container is not a reference input: the error says which engine to use.
        let container = Fixtures.repositoryRoot.appendingPathComponent("Tools/dsv2/Resources/tiny-dsv2.dsv2").path
        let bad = try DSV2Process.run(["bench", "--model", container, "--engine", "reference"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("quantized"), bad.stderr)
    }

    /// --depth: decode after cached tokens whose prefill is not timed; --prompt-tokens 0 leaves
    /// the prefill figures out; the quantized engine reports its attention core's share.
    func testDepthAndAttentionShare() throws {
        let synthesized = try synthModel(), model = synthesized.model
        let results = try bench(["bench", "--model", model.path, "--depth", "6,3", "--prompt-tokens", "0,4", "-n", "2",
                                 "--threads", "1", "--repetitions", "2", "--read-bandwidth", "1:10", "--json"], expectedResults: 4)
        XCTAssertEqual(Set(results.map { "\($0["depth"]!)/\($0["prompt_tokens"]!)" }), ["3/0", "3/4", "6/0", "6/4"])
        for r in results {
            let share = try XCTUnwrap(r["decode_attention_share"] as? Double)
            XCTAssertTrue(share > 0 && share <= 1, "decode_attention_share \(share)")
            if r["prompt_tokens"] as? Int == 0 {
                for field in ["prefill_tokens_per_second", "time_to_first_token_seconds", "prefill_attention_share"] {
                    XCTAssertNil(r[field], "\(field) without a prompt")
                }
            } else {
                let prefillShare = try XCTUnwrap(r["prefill_attention_share"] as? Double)
                XCTAssertTrue(prefillShare > 0 && prefillShare <= 1, "prefill_attention_share \(prefillShare)")
            }
        }
        // Nothing to decode after: the error names the options.
        let empty = try DSV2Process.run(["bench", "--model", model.path, "--prompt-tokens", "0", "-n", "1"])
        XCTAssertNotEqual(empty.status, 0)
        XCTAssertTrue(empty.stderr.contains("--depth"), empty.stderr)
        // Depth counts against max_position_embeddings.
        let config = try JSONSerialization.jsonObject(with: Data(contentsOf: Fixtures.url("v2-grouped/config.json"))) as! [String: Any]
        let positions = config["max_position_embeddings"] as! Int
        let deep = try DSV2Process.run(["bench", "--model", model.path, "--depth", "\(positions)", "--prompt-tokens", "0", "-n", "1"])
        XCTAssertNotEqual(deep.status, 0)
        XCTAssertTrue(deep.stderr.contains("max_position_embeddings"), deep.stderr)
    }

    private func bench(_ arguments: [String], expectedResults: Int) throws -> [[String: Any]] {
        let run = try DSV2Process.run(arguments)
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: run.stdoutData) as? [String: Any], run.stderr)
        let results = try XCTUnwrap(report["results"] as? [[String: Any]])
        XCTAssertEqual(results.count, expectedResults)
        XCTAssertGreaterThan(report["process_peak_rss_bytes"] as? Int ?? 0, 1 << 20)
        for r in results {
            // Without a prompt (depth only) there is no prefill to report.
            let hasPrompt = r["prompt_tokens"] as? Int != 0
            let prefillFields: Set = ["prefill_tokens_per_second", "time_to_first_token_seconds"]
            for field in Self.requiredFields where hasPrompt || !prefillFields.contains(field) {
                XCTAssertNotNil(r[field], "missing \(field)")
            }
            for field in ["decode_tokens_per_second", "read_bandwidth_bytes_per_second", "roofline_fraction"]
                + (hasPrompt ? prefillFields.sorted() : []) {
                let value = try XCTUnwrap(r[field] as? Double, field)
                XCTAssertTrue(value.isFinite && value > 0, "\(field) = \(value)")
            }
            let spread = try XCTUnwrap(r["decode_tokens_per_second_spread"] as? [String: Double])
            XCTAssertLessThanOrEqual(spread["min"]!, spread["median"]!)
            XCTAssertLessThanOrEqual(spread["median"]!, spread["max"]!)
            XCTAssertGreaterThan(r["peak_rss_bytes"] as? Int ?? 0, 1 << 20)
            XCTAssertGreaterThan(r["weight_bytes_per_token"] as? Int ?? 0, 0)
            // Bytes per token × tokens/s = achieved; the fraction is achieved / probe.
            let achieved = (r["weight_bytes_per_token"] as! Int, r["decode_tokens_per_second"] as! Double)
            XCTAssertEqual(r["roofline_fraction"] as! Double,
                           Double(achieved.0) * achieved.1 / (r["read_bandwidth_bytes_per_second"] as! Double), accuracy: 1e-9)
        }
        return results
    }
}
