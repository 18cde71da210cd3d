import DSV2Formats
import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// Results must not depend on the thread count, and a prefill must equal the same tokens fed
/// one at a time: every product row and every (token, head) attention item is computed whole by
/// one thread with the same code in both cases, so these are exact (bitwise) equalities.
final class EngineDeterminismTests: XCTestCase {
    func testOneAndTwoThreadsAreBitIdentical() throws {
        for (fixture, preset) in [("v2-grouped", "q4"), ("tiny-dsv2", "q8"), ("lite-fp32-norope", "f32")] {
            let ids = try EngineTestSupport.inputIds(fixture)
            var results: [[Float]] = []
            for threads in [1, 2] {
                let engine = try EngineTestSupport.engine(fixture, preset: preset, threads: threads)
                XCTAssertEqual(engine.threadCount, threads)
                var logits = try engine.forward(tokens: Array(ids.dropLast(2)), logits: .all)     // prefill (mat-mat)
                logits += try engine.forward(tokens: [ids[ids.count - 2]], logits: .last)         // decode (mat-vec)
                logits += try engine.forward(tokens: [ids[ids.count - 1]], logits: .last)
                results.append(logits)
            }
            XCTAssertEqual(results[0].count, results[1].count)
            let same = zip(results[0], results[1]).allSatisfy { $0.bitPattern == $1.bitPattern }
            XCTAssertTrue(same, "\(fixture) \(preset): logits differ between 1 and 2 threads")
            // Switching the pool mid-conversation keeps the cache and the results.
            let switching = try EngineTestSupport.engine(fixture, preset: preset, threads: 2)
            var switched = try switching.forward(tokens: Array(ids.dropLast(2)), logits: .all)
            switching.setThreadCount(1)
            XCTAssertEqual(switching.threadCount, 1)
            switched += try switching.forward(tokens: [ids[ids.count - 2]], logits: .last)
            switching.setThreadCount(3)
            switched += try switching.forward(tokens: [ids[ids.count - 1]], logits: .last)
            XCTAssertTrue(zip(switched, results[0]).allSatisfy { $0.bitPattern == $1.bitPattern }, "\(fixture): setThreadCount changed results")
            print("[engine-threads] \(fixture) \(preset): 1 vs 2 threads bit-identical: \(same)")
        }
    }

    func testPrefillEqualsTokenByTokenDecode() throws {
        for (fixture, preset) in [("lite-greedy", "q8"), ("v2-grouped", "q4"), ("tiny-dsv2", "f32")] {
            let ids = try EngineTestSupport.inputIds(fixture)
            let engine = try EngineTestSupport.engine(fixture, preset: preset)
            let prefill = try engine.forward(tokens: ids, logits: .all)
            engine.resetCache()
            var stepwise: [Float] = []
            for id in ids { stepwise += try engine.forward(tokens: [id], logits: .last) }
            XCTAssertEqual(engine.cachedTokens, ids.count)
            let same = zip(prefill, stepwise).allSatisfy { $0.bitPattern == $1.bitPattern }
            XCTAssertTrue(same, "\(fixture) \(preset): prefill differs from token-by-token decode")
        }
    }

    /// A prompt longer than `prefillChunkTokens` runs as chunks over the cache: the same logits
    /// bit for bit (all rows, and the last row alone), whatever the chunk length.
    func testChunkedPrefillEqualsOnePass() throws {
        for (fixture, preset) in [("lite-greedy", "q8"), ("v2-grouped", "q4")] {
            let ids = try EngineTestSupport.inputIds(fixture)
            let engine = try EngineTestSupport.engine(fixture, preset: preset)
            let whole = try engine.forward(tokens: ids, logits: .all)
            let vocab = engine.config.vocabSize
            for chunk in [1, 3, ids.count - 1] {
                engine.resetCache()
                engine.prefillChunkTokens = chunk
                let chunked = try engine.forward(tokens: ids, logits: .all)
                XCTAssertEqual(chunked.count, whole.count)
                XCTAssertTrue(zip(chunked, whole).allSatisfy { $0.bitPattern == $1.bitPattern },
                              "\(fixture) \(preset): chunks of \(chunk) differ from one pass")
                engine.resetCache()
                let last = try engine.forward(tokens: ids, logits: .last)
                XCTAssertEqual(last.count, vocab)
                XCTAssertTrue(zip(last, whole.suffix(vocab)).allSatisfy { $0.bitPattern == $1.bitPattern },
                              "\(fixture) \(preset): last row with chunks of \(chunk)")
                XCTAssertEqual(engine.cachedTokens, ids.count)
            }
        }
    }

    func testTruncateAndResetCache() throws {
        let ids = try EngineTestSupport.inputIds("lite-greedy")
        let engine = try EngineTestSupport.engine("lite-greedy", preset: "q8")
        let full = try engine.forward(tokens: ids, logits: .last)
        try engine.truncateCache(to: ids.count - 3)
        XCTAssertEqual(engine.cachedTokens, ids.count - 3)
        let again = try engine.forward(tokens: Array(ids.suffix(3)), logits: .last)
        XCTAssertEqual(full, again, "re-running a truncated suffix must reproduce the logits")
        XCTAssertThrowsError(try engine.truncateCache(to: ids.count + 1))
        XCTAssertThrowsError(try engine.forward(tokens: [Int32(engine.config.vocabSize)], logits: .last))
        XCTAssertThrowsError(try engine.forward(tokens: [], logits: .last))
        engine.resetCache()
        XCTAssertEqual(engine.cachedTokens, 0)
        XCTAssertEqual(try engine.forward(tokens: ids, logits: .last), full)
    }

    func testCacheGrowsPastItsInitialCapacity() throws {
        // initialContext 4: the prompt and the decode steps force several doublings.
        let policy = QuantizationPolicy.q8
        let source = QuantizingSource(try HFCheckpointSource(folder: Fixtures.url("lite-greedy")), policy: policy)
        let weights = try EngineWeightLoader.load(from: source)
        let small = QuantizedEngine(weights: weights, threads: 2, kvCacheType: .f16, initialContext: 4)
        let large = QuantizedEngine(weights: weights, threads: 2, kvCacheType: .f16, initialContext: 256)
        let ids = try EngineTestSupport.inputIds("lite-greedy")
        XCTAssertEqual(try small.forward(tokens: Array(ids.prefix(5)), logits: .all),
                       try large.forward(tokens: Array(ids.prefix(5)), logits: .all))
        for id in ids.dropFirst(5) {
            XCTAssertEqual(try small.forward(tokens: [id], logits: .last), try large.forward(tokens: [id], logits: .last))
        }
    }
}
