import DSV2Analysis
import DSV2Core
import Foundation
import TestSupport
import XCTest

/// `dsv2 dump` and `dsv2 compare` end to end with the built binary and the tiny-dsv2 fixture.
final class CompareCLITests: XCTestCase {
    let model = Fixtures.url("tiny-dsv2").path
    /// `dsv2 dump` needs explicit ids: the golden input of tiny-dsv2 (7 tokens).
    var goldenIDs: String {
        get throws {
            try SafetensorsFile(url: Fixtures.url("tiny-dsv2/golden.safetensors")).int32s("input_ids").map(String.init).joined(separator: ",")
        }
    }

    func testDumpIsBitIdenticalRunAfterRunAndHoldsTheGoldenNames() throws {
        let scratch = TemporaryDirectory()
        for form in ["expanded", "absorbed"] {
            for name in ["a", "b"] {
                let r = try DSV2Process.run(["dump", "--model", model, "--ids", try goldenIDs, "--engine", "reference", "--mla", form,
                                             "-o", scratch.path("\(name).st"), "--force"])
                XCTAssertEqual(r.status, 0, r.stderr)
            }
            let a = try Data(contentsOf: URL(fileURLWithPath: scratch.path("a.st")))
            let b = try Data(contentsOf: URL(fileURLWithPath: scratch.path("b.st")))
            XCTAssertEqual(a, b, "\(form): two dumps of the same input differ")
        }
        // The quantized engine too (its products are computed whole by one thread each).
        for name in ["qa", "qb"] {
            let r = try DSV2Process.run(["dump", "--model", model, "--ids", try goldenIDs, "--engine", "quantized", "--quant", "q4",
                                         "--trace", "*", "-o", scratch.path("\(name).st")])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: scratch.path("qa.st"))),
                       try Data(contentsOf: URL(fileURLWithPath: scratch.path("qb.st"))), "quantized:q4 dumps differ")
        // Default --trace = what golden.safetensors holds for one forward pass (it also has the
        // greedy continuation, generated_ids/decode_logits, which a single pass does not make).
        let dumped = Set(try SafetensorsFile(url: URL(fileURLWithPath: scratch.path("a.st"))).tensorNames)
        let golden = Set(try SafetensorsFile(url: Fixtures.url("tiny-dsv2/golden.safetensors")).tensorNames)
        XCTAssertEqual(dumped, golden.subtracting(["generated_ids", "decode_logits"]))
        let withDecode = try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "-n", "2", "-o", scratch.path("g.st")])
        XCTAssertEqual(withDecode.status, 0, withDecode.stderr)
        XCTAssertEqual(Set(try SafetensorsFile(url: URL(fileURLWithPath: scratch.path("g.st"))).tensorNames), golden)
        // --trace selects.
        let r = try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", "5,6,7", "--trace", "hidden.*,router.*.indices",
                                     "-o", scratch.path("some.st")])
        XCTAssertEqual(r.status, 0, r.stderr)
        let some = try SafetensorsFile(url: URL(fileURLWithPath: scratch.path("some.st")))
        XCTAssertEqual(Set(some.tensorNames), Set(["input_ids"] + (0...5).map { "hidden.\($0)" } + (1...4).map { "router.\($0).indices" }))
        XCTAssertEqual(try some.info("hidden.3").shape, [3, 192])
    }

    func testSelfComparisonGivesExactZerosAndExitZero() throws {
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "--trace", "*", "-o", scratch.path("a.st")]).status, 0)
        let r = try DSV2Process.run(["compare", scratch.path("a.st"), scratch.path("a.st"), "--json",
                                     "--fail-above", "*:cos<1,*:maxabs>0,*:rrms>0,logits:kl>0,logits:klmax>0,router.*:jaccard<1"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        let json = try r.json()
        XCTAssertEqual(json["passed"] as? Bool, true)
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        XCTAssertEqual(tensors.count, 1 + 6 + 5 * 3 + 4 + 2)  // input_ids, hidden, kv_latent/attn/moe, router.N (indices+weights), final_norm, logits
        for t in tensors {
            let metrics = try XCTUnwrap(t["metrics"] as? [String: Double])
            XCTAssertEqual(metrics["maxabs"], 0, "\(t["name"]!)")
            if t["kind"] as? String != "router" { XCTAssertEqual(metrics["cos"], 1, "\(t["name"]!)") }
        }
        let logits = try XCTUnwrap(tensors.last)
        XCTAssertEqual(logits["name"] as? String, "logits")
        XCTAssertEqual(logits["metrics"] as? [String: Double], ["maxabs": 0, "rrms": 0, "cos": 1, "kl": 0, "klmax": 0, "top1": 1, "top5": 1])
    }

    func testReferenceDumpMatchesTheGoldenFile() throws {
        // The golden file is DeepSeek's code in fp32; the reference agrees to ~1e-5 (docs/NUMERICS.md), so
        // these limits hold with a wide margin and fail on any real bug.
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "-o", scratch.path("ref.st")]).status, 0)
        let r = try DSV2Process.run(["compare", Fixtures.url("tiny-dsv2/golden.safetensors").path, scratch.path("ref.st"),
                                     "--fail-above", "hidden.*:rrms>1e-5,logits:kl>1e-9,logits:top1<1,router.*:identical<1"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("only in baseline:  decode_logits, generated_ids"), r.stdout)
        XCTAssertTrue(r.stdout.contains("PASS: 4 threshold(s) hold"), r.stdout)
    }

    /// A deliberate deviation in layer 2 (its o_proj scaled by 1.01 in a copy of the model) is
    /// reported at attn.2, the first tensor that depends on it, with exit status 1.
    func testPerturbedLayerIsTheFirstFailure() throws {
        let scratch = TemporaryDirectory()
        let perturbed = try scratch.perturbedModel("tiny-dsv2", tensor: "model.layers.2.self_attn.o_proj.weight", factor: 1.01)
        for (name, folder) in [("good.st", model), ("bad.st", perturbed)] {
            let r = try DSV2Process.run(["dump", "--model", folder, "--engine", "reference", "--ids", "6000,671,1505,3302,301,2000,17,5",
                                         "--trace", "*", "-o", scratch.path(name)])
            XCTAssertEqual(r.status, 0, r.stderr)
        }
        let exact = try DSV2Process.run(["compare", scratch.path("good.st"), scratch.path("bad.st"), "--fail-above", "*:rrms>0"])
        XCTAssertEqual(exact.status, 1, exact.stdout + exact.stderr)
        XCTAssertTrue(exact.stdout.contains("FIRST FAILURE: attn.2 rrms "), exact.stdout)
        // Looking only at the residual stream, the first failure is the output of layer 2.
        let r = try DSV2Process.run(["compare", scratch.path("good.st"), scratch.path("bad.st"), "--json",
                                     "--fail-above", "hidden.*:rrms>1e-4,logits:kl>0"])
        XCTAssertEqual(r.status, 1)
        let json = try jsonObject(r)
        let first = try XCTUnwrap(json["first_failure"] as? [String: Any])
        XCTAssertEqual(first["tensor"] as? String, "hidden.3")
        XCTAssertEqual(first["metric"] as? String, "rrms")
        XCTAssertEqual(first["op"] as? String, ">")
        XCTAssertEqual(first["limit"] as? Double, 1e-4)
        let failures = try XCTUnwrap(json["failures"] as? [[String: Any]]).map { $0["tensor"] as! String }
        XCTAssertEqual(failures, ["hidden.3", "hidden.4", "hidden.5", "logits"])
        // Everything before the perturbed weight is bit-identical.
        let tensors = try XCTUnwrap(json["tensors"] as? [[String: Any]])
        for t in tensors.prefix(while: { $0["name"] as? String != "attn.2" }) {
            XCTAssertEqual((t["metrics"] as? [String: Double])?["maxabs"], 0, "\(t["name"]!)")
        }
    }

    func testUsageErrorsExitTwoWithAClearMessage() throws {
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", "1,2", "-o", scratch.path("a.st")]).status, 0)
        let cases: [([String], String)] = [
            (["--fail-above", "hidden.*:cosine<0.9"], "bad threshold 'hidden.*:cosine<0.9': unknown metric 'cosine'"),
            (["--fail-above", "hidden.*:cos=0.9"], "missing comparison operator"),
            (["--fail-above", "hidden.*:cos<x"], "'x' is not a finite number"),
            (["--fail-above", "cos<0.9"], "expected glob:metric<op>value"),
        ]
        for (extra, message) in cases {
            let r = try DSV2Process.run(["compare", scratch.path("a.st"), scratch.path("a.st")] + extra)
            XCTAssertEqual(r.status, 2, "\(extra)")
            XCTAssertTrue(r.stderr.contains(message), "\(extra): \(r.stderr)")
        }
        let one = try DSV2Process.run(["compare", scratch.path("a.st")])
        XCTAssertEqual(one.status, 2)
        XCTAssertTrue(one.stderr.contains("expected two dump files"), one.stderr)
        let missing = try DSV2Process.run(["compare", scratch.path("a.st"), scratch.path("nope.st")])
        XCTAssertEqual(missing.status, 2)
        XCTAssertTrue(missing.stderr.contains("nope.st"), missing.stderr)
        let engines = try DSV2Process.run(["compare", "--model", model, "--engines", "reference"])
        XCTAssertEqual(engines.status, 2)
        XCTAssertTrue(engines.stderr.contains("--engines needs exactly two engines"), engines.stderr)
        let unknown = try DSV2Process.run(["compare", "--model", model, "--engines", "reference,quantized:q3"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("unknown quantization preset \"q3\""), unknown.stderr)
    }

    func testShapeMismatchesAndOneSidedTensorsAreReported() throws {
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "-o", scratch.path("seven.st")]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", "1,2,3", "-o", scratch.path("three.st")]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "--trace", "hidden.*", "-o", scratch.path("hidden.st")]).status, 0)
        let r = try DSV2Process.run(["compare", scratch.path("seven.st"), scratch.path("three.st")])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("FIRST FAILURE: input_ids shape [7] (baseline) vs [3] (candidate)"), r.stdout)
        XCTAssertTrue(r.stdout.contains("hidden.2    7x192  -  -  -  shape [7, 192] (baseline) vs [3, 192] (candidate)")
                      || r.stdout.contains("shape [7, 192] (baseline) vs [3, 192] (candidate)"), r.stdout)
        let sided = try DSV2Process.run(["compare", scratch.path("hidden.st"), scratch.path("seven.st")])
        XCTAssertEqual(sided.status, 0, sided.stdout + sided.stderr)
        XCTAssertTrue(sided.stdout.contains("only in candidate: attn.0, attn.1, router.1.indices, router.1.weights, attn.2"), sided.stdout)
        XCTAssertTrue(sided.stdout.contains("no thresholds given"), sided.stdout)
    }

    /// The JSON of `--json` has exactly the keys docs/COMPARE.md documents.
    func testJSONFollowsTheDocumentedSchema() throws {
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "-o", scratch.path("a.st")]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", try goldenIDs, "--mla", "absorbed",
                                            "--trace", "*", "-o", scratch.path("b.st")]).status, 0)
        let r = try DSV2Process.run(["compare", scratch.path("a.st"), scratch.path("b.st"), "--json",
                                     "--fail-above", "hidden.*:cos<0.99999,logits:top1<1,router.*:identical<1,hidden.5:maxabs>=0"])
        XCTAssertEqual(r.status, 1, r.stdout + r.stderr)  // hidden.5:maxabs>=0 always breaks
        let json = try jsonObject(r)
        XCTAssertEqual(Set(json.keys), ["schema", "version", "baseline", "candidate", "thresholds", "tensors", "only_in_baseline",
                                        "only_in_candidate", "unused_thresholds", "failures", "first_failure", "passed"])
        XCTAssertEqual(json["schema"] as? String, "dsv2.compare")
        XCTAssertEqual(json["version"] as? Int, 1)
        XCTAssertEqual(json["unused_thresholds"] as? [String], [])
        XCTAssertEqual(json["only_in_candidate"] as? [String], (0..<5).flatMap { ["kv_latent.\($0)", "moe.\($0)"] })
        let allowedMetrics = Set(ComparisonMetric.allCases.map(\.rawValue))
        for t in try XCTUnwrap(json["tensors"] as? [[String: Any]]) {
            XCTAssertTrue(Set(t.keys).isSubset(of: ["name", "kind", "shape", "candidate_shape", "mismatch", "metrics", "broken", "checked"]),
                          "\(t.keys)")
            XCTAssertTrue(["tensor", "logits", "router"].contains(t["kind"] as? String ?? ""))
            XCTAssertTrue(Set((t["metrics"] as? [String: Any] ?? [:]).keys).isSubset(of: allowedMetrics))
        }
        let first = try XCTUnwrap(json["first_failure"] as? [String: Any])
        XCTAssertEqual(Set(first.keys), ["tensor", "threshold", "metric", "value", "op", "limit", "message"])
        XCTAssertEqual(first["tensor"] as? String, "hidden.5")
        XCTAssertEqual(first["threshold"] as? String, "hidden.5:maxabs>=0")
        // The library decodes it back to the same report.
        let report = try ComparisonReport.decode(json: r.stdoutData)
        XCTAssertEqual(report.firstFailure?.tensor, "hidden.5")
        XCTAssertEqual(report.tensors.count, (json["tensors"] as! [Any]).count)
    }

    /// A threshold that checks nothing (a typo in the glob) is a usage error, not a silent pass.
    func testThresholdMatchingNothingIsAUsageError() throws {
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", "1,2", "-o", scratch.path("a.st")]).status, 0)
        for spec in ["hiden.*:cos<0.999", "hidden.*:kl>0.1", "logits:kl>1,nothing:cos<1"] {
            let r = try DSV2Process.run(["compare", scratch.path("a.st"), scratch.path("a.st"), "--fail-above", spec])
            XCTAssertEqual(r.status, 2, "\(spec): \(r.stdout)")
            XCTAssertTrue(r.stderr.hasPrefix("dsv2 compare: error: --fail-above: "), r.stderr)
            XCTAssertTrue(r.stderr.contains("matches no compared tensor"), r.stderr)
        }
    }

    /// Both MLA forms of the reference are the same function up to fp32 rounding.
    func testEnginesModeComparesTwoEnginesOnOneInput() throws {
        let r = try DSV2Process.run(["compare", "--model", model, "--engines", "reference,reference:absorbed", "--prompt", "The best way",
                                     "--fail-above", "hidden.*:cos<0.99999,logits:kl>1e-8,router.*:identical<1"])
        XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
        XCTAssertTrue(r.stdout.contains("candidate: reference:absorbed"))
        XCTAssertTrue(r.stdout.contains("kv_latent.4"))
        XCTAssertTrue(r.stdout.contains("PASS: 3 threshold(s)"), r.stdout)
    }
}
