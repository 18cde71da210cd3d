import XCTest
import DSV2Analysis

/// Metrics of `dsv2 compare`: exact values on hand-computed cases. Tolerances are 1e-12 where the
/// float64 arithmetic has a few roundings, exact where identical inputs must give exact results.
final class AnalysisMetricsTests: XCTestCase {
    func testIdenticalTensorsGiveExactZerosAndCosineOne() {
        // Values whose squared norms are not perfect squares: sqrt(n)² ≠ n in floating point,
        // which is why the cosine divides by sqrt(|A|²|B|²) instead of |A|·|B|.
        let a: [Float] = (0..<1000).map { Float(sin(Double($0) * 0.37)) * 3.1 + 0.2 }
        let m = TensorMetrics(baseline: a, candidate: a)
        XCTAssertEqual(m.maxAbs, 0)
        XCTAssertEqual(m.relativeRMS, 0)
        XCTAssertEqual(m.cosine, 1)
    }

    func testHandComputedTensorMetrics() {
        let m = TensorMetrics(baseline: [3, 4], candidate: [4, 3])
        XCTAssertEqual(m.maxAbs, 1)
        XCTAssertEqual(m.relativeRMS, (2.0 / 25).squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(m.cosine, 24.0 / 25, accuracy: 1e-15)
        XCTAssertEqual(TensorMetrics(baseline: [1, 0], candidate: [0, 1]).cosine, 0)
        XCTAssertEqual(TensorMetrics(baseline: [1, 2], candidate: [-1, -2]).cosine, -1)
        // Zero tensors: equal → cos 1, rrms 0; zero baseline vs non-zero → rrms inf, cos 0.
        XCTAssertEqual(TensorMetrics(baseline: [0, 0], candidate: [0, 0]), TensorMetrics(maxAbs: 0, relativeRMS: 0, cosine: 1))
        let fromZero = TensorMetrics(baseline: [0, 0], candidate: [0, 1])
        XCTAssertEqual(fromZero.relativeRMS, .infinity)
        XCTAssertEqual(fromZero.cosine, 0)
    }

    func testNaNPoisonsEveryMetricAndBreaksEveryThreshold() {
        let m = TensorMetrics(baseline: [1, 2, 3], candidate: [1, .nan, 3])
        XCTAssertTrue(m.maxAbs.isNaN && m.relativeRMS.isNaN && m.cosine.isNaN)
        // Both directions: a NaN never passes, whatever the operator.
        XCTAssertTrue(try Threshold.parse("x:cos<0.9").isBroken(by: .nan))
        XCTAssertTrue(try Threshold.parse("x:cos>=0").isBroken(by: .nan))
    }

    func testLogSoftmaxIsStableAndMatchesDirectFormula() {
        let row: [Float] = [1000, 1001, 999]  // exp overflows without the max shift
        let lp = row.withUnsafeBufferPointer { LogSoftmax.row($0) }
        let z = exp(-1.0) + 1 + exp(-2.0)
        XCTAssertEqual(lp[1], -log(z), accuracy: 1e-12)
        XCTAssertEqual(lp[0], -1 - log(z), accuracy: 1e-12)
        let nll = row.withUnsafeBufferPointer { LogSoftmax.negativeLogLikelihood($0, target: 2) }
        XCTAssertEqual(nll, 2 + log(z), accuracy: 1e-12)
    }

    func testKLDivergenceHandComputed() {
        // P = (1/2, 1/2), Q = (1/4, 3/4): KL = ½ln2 + ½ln(2/3).
        let p = [log(0.5), log(0.5)], q = [log(0.25), log(0.75)]
        XCTAssertEqual(LogSoftmax.klDivergence(p, q), 0.5 * log(2) + 0.5 * log(2.0 / 3), accuracy: 1e-15)
        XCTAssertEqual(LogSoftmax.klDivergence(q, q), 0)
    }

    func testTopKAndLogitMetrics() {
        let row: [Float] = [0.1, 5, 3, 5, -1, 2, 4]
        XCTAssertEqual(row.withUnsafeBufferPointer { LogSoftmax.argmax($0) }, 1, "ties go to the lower index")
        XCTAssertEqual(row.withUnsafeBufferPointer { LogSoftmax.topK($0, 3) }, [1, 3, 6])
        XCTAssertEqual(row.withUnsafeBufferPointer { LogSoftmax.topK($0, 10) }.count, 7)

        // Two rows of vocab 6: row 0 identical, row 1 with a different argmax and top-5 sharing 4 of 5.
        let a: [Float] = [1, 2, 3, 4, 5, 6, /**/ 6, 5, 4, 3, 2, 1]
        let b: [Float] = [1, 2, 3, 4, 5, 6, /**/ 6, 7, 4, 3, 1, 2]
        let m = LogitMetrics(baseline: a, candidate: b, vocab: 6)
        XCTAssertEqual(m.rows, 2)
        XCTAssertEqual(m.top1Agreement, 0.5)
        XCTAssertEqual(m.top5Overlap, (5.0 + 4.0) / 10)
        // Row 1's KL computed directly in float64 from the definition.
        func logSoftmax(_ x: [Double]) -> [Double] { let s = log(x.map(exp).reduce(0, +)); return x.map { $0 - s } }
        let lpa = logSoftmax([6, 5, 4, 3, 2, 1]), lpb = logSoftmax([6, 7, 4, 3, 1, 2])
        let kl1 = zip(lpa, lpb).map { exp($0) * ($0 - $1) }.reduce(0, +)
        XCTAssertEqual(m.klMax, kl1, accuracy: 1e-12)
        XCTAssertEqual(m.klMean, kl1 / 2, accuracy: 1e-12)
        XCTAssertEqual(LogitMetrics(baseline: a, candidate: a, vocab: 6),
                       LogitMetrics(rows: 2, top1Agreement: 1, top5Overlap: 1, klMean: 0, klMax: 0))
    }

    func testRouterMetricsCompareExpertSets() {
        // Token 0: same set in another order (order is unspecified: identical). Token 1: {1,2} vs {2,3}.
        let r = RouterMetrics(baselineIndices: [4, 7, 1, 2], candidateIndices: [7, 4, 2, 3], topK: 2,
                              baselineWeights: [0.6, 0.4, 0.5, 0.5], candidateWeights: [0.45, 0.55, 0.5, 0.5])
        XCTAssertEqual(r.tokens, 2)
        XCTAssertEqual(r.identicalFraction, 0.5)
        XCTAssertEqual(r.meanJaccard, (1 + 1.0 / 3) / 2, accuracy: 1e-15)
        // Weights paired by expert id: |0.6 − 0.55| for expert 4, |0.4 − 0.45| for 7, 0 for 2.
        XCTAssertEqual(r.weightsMaxAbs!, 0.05, accuracy: 1e-7)
        XCTAssertNil(RouterMetrics(baselineIndices: [1], candidateIndices: [1], topK: 1).weightsMaxAbs)
    }

    func testForwardOrder() {
        let shuffled = ["logits", "moe.1", "hidden.2", "router.1.weights", "attn.10", "hidden.10", "final_norm",
                        "kv_latent.1", "decode_logits", "router.1.indices", "attn.1", "hidden.1", "input_ids",
                        "hidden.0", "attn.0", "attn.2", "hidden.11", "generated_ids"]
        XCTAssertEqual(TraceOrder.sorted(shuffled), [
            "input_ids", "hidden.0", "attn.0", "hidden.1", "kv_latent.1", "attn.1", "router.1.indices",
            "router.1.weights", "moe.1", "hidden.2", "attn.2", "hidden.10", "attn.10", "hidden.11",
            "final_norm", "logits", "decode_logits", "generated_ids",
        ])
        XCTAssertEqual(TraceOrder.routerLayer("router.12.weights"), 12)
        XCTAssertNil(TraceOrder.routerLayer("router.x.weights"))
        XCTAssertNil(TraceOrder.routerLayer("hidden.1"))
    }
}
