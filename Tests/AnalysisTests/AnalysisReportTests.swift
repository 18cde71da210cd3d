import XCTest
import DSV2Analysis
import DSV2Core

final class AnalysisReportTests: XCTestCase {
    /// A small fake trace: 2 layers, router on layer 1, logits [2, 4].
    private func trace(scaleFrom perturbed: String? = nil, by factor: Float = 1) -> [String: TracedTensor] {
        var out: [String: TracedTensor] = [:]
        var scaling = false
        for name in ["hidden.0", "kv_latent.0", "attn.0", "moe.0", "hidden.1", "kv_latent.1", "attn.1", "moe.1",
                     "hidden.2", "final_norm", "logits"] {
            if name == perturbed { scaling = true }
            let values: [Float] = (0..<8).map { Float($0 + name.count) * 0.25 - 1 }
            out[name] = TracedTensor(shape: [2, 4], floats: scaling ? values.map { $0 * factor + 0.01 } : values)
        }
        out["router.1.indices"] = TracedTensor(shape: [2, 2], int32s: [0, 3, 1, 2])
        out["router.1.weights"] = TracedTensor(shape: [2, 2], floats: [0.7, 0.3, 0.6, 0.4])
        return out
    }

    func testSelfComparisonIsExactAndPasses() throws {
        let set = TensorSet(label: "a", tensors: trace())
        let thresholds = try Threshold.parseList("*:cos<1,*:maxabs>0,logits:kl>0,router.*:identical<1")
        let report = ComparisonReport(baseline: set, candidate: set, thresholds: thresholds)
        XCTAssertTrue(report.passed)
        XCTAssertNil(report.firstFailure)
        XCTAssertEqual(report.tensors.map(\.name), ["hidden.0", "kv_latent.0", "attn.0", "moe.0", "hidden.1", "kv_latent.1",
                                                     "attn.1", "router.1", "moe.1", "hidden.2", "final_norm", "logits"])
        for entry in report.tensors where entry.kind != .router {
            XCTAssertEqual(entry.metric(.cos), 1, entry.name)
            XCTAssertEqual(entry.metric(.maxabs), 0, entry.name)
            XCTAssertEqual(entry.metric(.rrms), 0, entry.name)
        }
        let logits = report.tensors.last!
        XCTAssertEqual(logits.kind, .logits)
        XCTAssertEqual(logits.metric(.kl), 0)
        XCTAssertEqual(logits.metric(.klmax), 0)
        XCTAssertEqual(logits.metric(.top1), 1)
        XCTAssertEqual(logits.metric(.top5), 1)
        let router = report.tensors[7]
        XCTAssertEqual(router.metric(.jaccard), 1)
        XCTAssertEqual(router.metric(.identical), 1)
        XCTAssertEqual(router.metric(.maxabs), 0)
        XCTAssertTrue(report.unusedThresholds.isEmpty)
        XCTAssertTrue(report.renderTable().contains("PASS: 4 threshold(s)"))
    }

    func testFirstFailureIsTheEarliestTensorInForwardOrder() throws {
        let a = TensorSet(label: "a", tensors: trace())
        let b = TensorSet(label: "b", tensors: trace(scaleFrom: "attn.1", by: 1.5))
        let report = ComparisonReport(baseline: a, candidate: b,
                                      thresholds: try Threshold.parseList("logits:kl>0,hidden.*:rrms>0,attn.*:maxabs>0.001"))
        XCTAssertFalse(report.passed)
        XCTAssertEqual(report.firstFailure?.tensor, "attn.1")
        XCTAssertEqual(report.firstFailure?.threshold, "attn.*:maxabs>0.001")
        XCTAssertEqual(report.failures.map(\.tensor), ["attn.1", "hidden.2", "logits"])
        XCTAssertTrue(report.firstFailure!.message.hasPrefix("attn.1 maxabs "), report.firstFailure!.message)
        XCTAssertTrue(report.renderTable().contains("FIRST FAILURE: attn.1 maxabs"))
        // Everything before the perturbation is untouched.
        XCTAssertEqual(report.tensors.first { $0.name == "hidden.1" }?.metric(.maxabs), 0)
    }

    func testOneSidedTensorsMismatchesAndUnusedThresholds() throws {
        var left = trace(), right = trace()
        left["only.left"] = TracedTensor(shape: [1], floats: [1])
        right["decode_logits"] = TracedTensor(shape: [1, 4], floats: [1, 2, 3, 4])
        right.removeValue(forKey: "moe.1")
        right["hidden.1"] = TracedTensor(shape: [4, 2], floats: left["hidden.1"]!.floats!)
        right["router.1.indices"] = TracedTensor(shape: [2, 2], int32s: [3, 0, 2, 5])
        let report = ComparisonReport(baseline: TensorSet(label: "L", tensors: left), candidate: TensorSet(label: "R", tensors: right),
                                      thresholds: try Threshold.parseList("router.1:jaccard<0.5,nothing.*:cos<1,hidden.0:top1<1"))
        XCTAssertEqual(report.onlyInBaseline, ["moe.1", "only.left"])
        XCTAssertEqual(report.onlyInCandidate, ["decode_logits"])
        XCTAssertEqual(report.unusedThresholds, ["nothing.*:cos<1", "hidden.0:top1<1"])
        let hidden1 = report.tensors.first { $0.name == "hidden.1" }!
        XCTAssertEqual(hidden1.candidateShape, [4, 2])
        XCTAssertEqual(hidden1.mismatch, "shape [2, 4] (baseline) vs [4, 2] (candidate)")
        XCTAssertTrue(hidden1.metrics.isEmpty)
        XCTAssertEqual(report.firstFailure?.message, "hidden.1 shape [2, 4] (baseline) vs [4, 2] (candidate)")
        // Router token 1 keeps 1 of 3 experts: jaccard (1 + 1/3)/2 = 0.667, not below 0.5.
        let router = report.tensors.first { $0.name == "router.1" }!
        XCTAssertEqual(router.metric(.jaccard)!, 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(router.metric(.identical), 0.5)
        XCTAssertTrue(router.broken.isEmpty)
        XCTAssertEqual(report.failures.count, 1)
        let table = report.renderTable()
        XCTAssertTrue(table.contains("only in baseline:  moe.1, only.left"))
        XCTAssertTrue(table.contains("warning: threshold(s) matched no tensor with that metric: nothing.*:cos<1, hidden.0:top1<1"))
    }

    func testJSONRoundTripsIncludingNonFiniteValues() throws {
        var right = trace()
        right["hidden.2"] = TracedTensor(shape: [2, 4], floats: [.nan, 0, 0, 0, 0, 0, 0, 0])
        let report = ComparisonReport(baseline: TensorSet(label: "a", tensors: trace()), candidate: TensorSet(label: "b", tensors: right),
                                      thresholds: try Threshold.parseList("hidden.*:cos<0.9"))
        XCTAssertEqual(report.firstFailure?.message, "hidden.2 cos nan < 0.9")
        let data = try report.jsonData()
        XCTAssertNotNil(try JSONSerialization.jsonObject(with: data))
        XCTAssertTrue(String(decoding: data, as: UTF8.self).contains("\"cos\" : \"nan\""))
        let back = try ComparisonReport.decode(json: data)
        XCTAssertEqual(back.tensors.map(\.name), report.tensors.map(\.name))
        XCTAssertEqual(back.firstFailure?.tensor, "hidden.2")
        XCTAssertTrue(back.tensors.first { $0.name == "hidden.2" }!.metric(.cos)!.isNaN)
    }
}
