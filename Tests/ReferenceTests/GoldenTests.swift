import DSV2Core
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// The reference against the golden outputs of DeepSeek's original code (fp32) for every fixture.
///
/// Tolerance: `GoldenTolerance.fp32` (why 1e-4 is sound is written there).
final class GoldenTests: XCTestCase {
    static let tolerance = GoldenTolerance.fp32

    func testAllFixturesMatchGolden() throws {
        for name in Fixtures.modelCases {
            try checkFixture(name)
        }
    }

    private func checkFixture(_ name: String) throws {
        let fixture = try GoldenCase(name)
        let model = try ReferenceModel(checkpoint: fixture.folder)
        let tracer = RecordingTracer(patterns: TraceName.goldenPatterns)
        let ids = try fixture.inputIds
        let logits = try model.forward(tokens: ids, logits: .all, tracer: tracer)
        var report: [(String, Float)] = []

        func compare(_ tensorName: String, _ actual: [Float]) throws {
            let error = relativeError(actual, try fixture.floats(tensorName))
            report.append((tensorName, error))
            XCTAssertLessThanOrEqual(error, Self.tolerance, "\(name): \(tensorName) relative error \(error)")
        }
        try compare("logits", logits)
        for n in 0...fixture.config.numHiddenLayers {
            try compare(TraceName.hidden(n), XCTUnwrap(tracer[TraceName.hidden(n)]?.floats))
        }
        for l in 0..<fixture.config.numHiddenLayers {
            try compare(TraceName.attn(l), XCTUnwrap(tracer[TraceName.attn(l)]?.floats))
        }
        try compare(TraceName.finalNorm, XCTUnwrap(tracer[TraceName.finalNorm]?.floats))

        // Routing: identical (expert, weight) sets per token; order is unspecified (docs/NUMERICS.md item 8).
        var worstRouterWeight: Float = 0
        for l in fixture.config.moeLayers {
            let indices = try XCTUnwrap(tracer[TraceName.routerIndices(l)]?.int32s)
            let weights = try XCTUnwrap(tracer[TraceName.routerWeights(l)]?.floats)
            let goldenIndices = try fixture.int32s(TraceName.routerIndices(l))
            let goldenWeights = try fixture.floats(TraceName.routerWeights(l))
            XCTAssertEqual(indices.count, goldenIndices.count)
            let k = fixture.config.expertsPerToken
            let scale = goldenWeights.map(abs).max() ?? 1
            for t in 0..<ids.count {
                let ours = Dictionary(uniqueKeysWithValues: (0..<k).map { (indices[t * k + $0], weights[t * k + $0]) })
                let theirs = Dictionary(uniqueKeysWithValues: (0..<k).map { (goldenIndices[t * k + $0], goldenWeights[t * k + $0]) })
                XCTAssertEqual(Set(ours.keys), Set(theirs.keys), "\(name): router.\(l) token \(t) chose different experts")
                for (e, w) in theirs {
                    guard let mine = ours[e] else { continue }
                    worstRouterWeight = max(worstRouterWeight, abs(mine - w) / scale)
                }
            }
        }
        report.append(("router.*.weights", worstRouterWeight))
        XCTAssertLessThanOrEqual(worstRouterWeight, Self.tolerance, "\(name): router weights")

        // Greedy decode through the KV cache (not by re-running the prefix).
        let generated = try fixture.generatedIds
        let lastRow = Array(logits[(ids.count - 1) * fixture.config.vocabSize ..< ids.count * fixture.config.vocabSize])
        let decoded = try greedyDecode(model, lastRow: lastRow, count: generated.count)
        XCTAssertEqual(decoded.ids, generated, "\(name): greedy tokens")
        try compare("decode_logits", decoded.logits)

        print("[\(name)] worst relative error per tensor (tolerance \(Self.tolerance)):")
        for (tensor, error) in report {
            print("  " + tensor.padding(toLength: 18, withPad: " ", startingAt: 0) + String(format: "%.3e", error))
        }
    }
}
