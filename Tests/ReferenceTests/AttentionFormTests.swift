import DSV2Core
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// The expanded (paper's definition) and absorbed (latent-cache) MLA forms are the same function;
/// they differ only in fp32 summation order, so they must agree far inside the golden tolerance.
/// 1e-5 relative: both are single fp32 passes whose reassociation error is a few ulps × √(depth)
/// (observed ~1e-7); a wrong absorption (e.g. a transposed W^UK) moves values by O(1).
final class AttentionFormTests: XCTestCase {
    static let tolerance: Float = 1e-5

    func testExpandedAndAbsorbedAgreeOnAllFixtures() throws {
        for name in Fixtures.modelCases {
            let fixture = try GoldenCase(name)
            let weights = try ReferenceWeights(checkpoint: SafetensorsCheckpoint(url: fixture.folder), config: fixture.config)
            let expanded = ReferenceModel(config: fixture.config, weights: weights, attentionForm: .expanded)
            let absorbed = ReferenceModel(config: fixture.config, weights: weights, attentionForm: .absorbed)
            let ids = try fixture.inputIds
            let tracers = [RecordingTracer(patterns: ["*"]), RecordingTracer(patterns: ["*"])]
            let prefill = [try expanded.forward(tokens: ids, logits: .all, tracer: tracers[0]),
                           try absorbed.forward(tokens: ids, logits: .all, tracer: tracers[1])]
            var worst: (name: String, error: Float) = ("", 0)
            func check(_ tensor: String, _ a: [Float], _ b: [Float]) {
                let error = relativeError(b, a)
                if error >= worst.error { worst = (tensor, error) }
                XCTAssertLessThanOrEqual(error, Self.tolerance, "\(name): \(tensor) expanded vs absorbed")
            }
            check("logits", prefill[0], prefill[1])
            XCTAssertEqual(tracers[0].names, tracers[1].names)
            for tensor in tracers[0].names {
                if let a = tracers[0][tensor]?.floats, let b = tracers[1][tensor]?.floats { check(tensor, a, b) }
                if let a = tracers[0][tensor]?.int32s, let b = tracers[1][tensor]?.int32s {
                    XCTAssertEqual(Set(a), Set(b), "\(name): \(tensor)")
                }
            }
            // Decode through each form's own cache.
            let vocab = fixture.config.vocabSize
            let last = ids.count - 1
            let decodedExpanded = try greedyDecode(expanded, lastRow: Array(prefill[0][last * vocab ..< (last + 1) * vocab]), count: 8)
            let decodedAbsorbed = try greedyDecode(absorbed, lastRow: Array(prefill[1][last * vocab ..< (last + 1) * vocab]), count: 8)
            XCTAssertEqual(decodedExpanded.ids, decodedAbsorbed.ids)
            check("decode_logits", decodedExpanded.logits, decodedAbsorbed.logits)
            print("[\(name)] expanded vs absorbed: worst relative difference \(String(format: "%.3e", worst.error)) (\(worst.name))")
        }
    }

    /// Prefill in pieces, decode one token at a time, or truncate and re-run: the cache must make
    /// every split give the logits of one whole prefill.
    func testCacheSplitsAndTruncationMatchOnePrefill() throws {
        let fixture = try GoldenCase("v2-grouped")
        let weights = try ReferenceWeights(checkpoint: SafetensorsCheckpoint(url: fixture.folder), config: fixture.config)
        let ids = try fixture.inputIds
        let vocab = fixture.config.vocabSize
        for form in AttentionForm.allCases {
            let model = ReferenceModel(config: fixture.config, weights: weights, attentionForm: form)
            let whole = try model.forward(tokens: ids, logits: .all)
            XCTAssertEqual(model.cachedTokens, ids.count)

            model.resetCache()
            XCTAssertEqual(model.cachedTokens, 0)
            let split = 5
            let first = try model.forward(tokens: Array(ids[..<split]), logits: .all)
            let second = try model.forward(tokens: Array(ids[split...]), logits: .all)
            XCTAssertLessThanOrEqual(relativeError(first + second, whole), 1e-5, "\(form): split prefill")

            try model.truncateCache(to: 9)
            XCTAssertEqual(model.cachedTokens, 9)
            let rerun = try model.forward(tokens: Array(ids[9...]), logits: .all)
            XCTAssertLessThanOrEqual(relativeError(rerun, Array(whole[(9 * vocab)...])), 1e-5, "\(form): truncate and re-run")

            let lastOnly = try { () throws -> [Float] in
                try model.truncateCache(to: ids.count - 1)
                return try model.forward(tokens: [ids.last!], logits: .last)
            }()
            XCTAssertLessThanOrEqual(relativeError(lastOnly, Array(whole[((ids.count - 1) * vocab)...])), 1e-5, "\(form): decode step")
            XCTAssertThrowsError(try model.truncateCache(to: ids.count + 1))
        }
    }

    func testBadTokensAreErrorsAndLeaveTheCacheAlone() throws {
        let fixture = try GoldenCase("lite-greedy")
        let model = try ReferenceModel(checkpoint: fixture.folder)
        _ = try model.forward(tokens: [1, 2, 3], logits: .none)
        XCTAssertThrowsError(try model.forward(tokens: [5, Int32(fixture.config.vocabSize)], logits: .last)) { error in
            XCTAssertEqual(error as? LanguageModelError, .tokenOutOfRange(token: Int32(fixture.config.vocabSize), vocabSize: fixture.config.vocabSize))
        }
        XCTAssertThrowsError(try model.forward(tokens: [], logits: .last))
        XCTAssertEqual(model.cachedTokens, 3)
    }
}

/// Weights left in the mapped checkpoint and widened block by block give the fp32-in-memory
/// results: the same products in fp32, split into row blocks (1e-6 relative allows a BLAS tile
/// boundary to move; the widening itself is exact).
final class MappedWeightsTests: XCTestCase {
    func testMappedWeightsMatchInMemoryWeights() throws {
        for name in Fixtures.modelCases {
            let fixture = try GoldenCase(name)
            let ids = try fixture.inputIds
            for form in AttentionForm.allCases {
                let inMemory = try ReferenceModel(checkpoint: fixture.folder, attentionForm: form, weightStorage: .fp32)
                let mapped = try ReferenceModel(checkpoint: fixture.folder, attentionForm: form, weightStorage: .mapped)
                XCTAssertTrue(mapped.weights.lmHead.isMapped)
                let a = try inMemory.forward(tokens: ids, logits: .all)
                let b = try mapped.forward(tokens: ids, logits: .all)
                XCTAssertLessThanOrEqual(relativeError(b, a), 1e-6, "\(name) \(form) prefill")
                let c = try inMemory.forward(tokens: [ids[0]], logits: .last)
                let d = try mapped.forward(tokens: [ids[0]], logits: .last)
                XCTAssertLessThanOrEqual(relativeError(d, c), 1e-6, "\(name) \(form) decode")
            }
        }
    }
}
