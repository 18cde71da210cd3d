import DSV2Core
import DSV2Formats
@testable import DSV2Quantized
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// The expanded attention of multi-token passes (EngineExpandedAttention.swift) on prompts long
/// enough for several query blocks (16 rows), key tiles (64 keys) and key blocks: against the
/// reference in both MLA forms, and its determinism over thread counts, chunks, key blocks and
/// batches.
final class EngineExpandedAttentionTests: XCTestCase {
    /// tiny-dsv2 allows 1024 positions; 300 tokens cross 4 tiles and (with `keyBlock` 128) 3 key blocks.
    static let promptLength = 300

    private func prompt(_ config: ModelConfig, length: Int = promptLength, seed: UInt64 = 7) -> [Int32] {
        var random = SplitMix64(seed: seed)
        return (0..<length).map { _ in Int32(random.next() % UInt64(config.vocabSize)) }
    }

    private func engine(preset: String, cache: KVCacheType, threads: Int = 2, keyBlock: Int = 128,
                        chunk: Int = 100) throws -> QuantizedEngine {
        let engine = try EngineTestSupport.engine("tiny-dsv2", preset: preset, threads: threads, cache: cache)
        engine.expandedKeyBlockLimit = keyBlock
        engine.prefillChunkTokens = chunk
        return engine
    }

    private func same(_ a: [Float], _ b: [Float]) -> Bool {
        a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
    }

    /// The engine's prefill (chunks of 100 over the cache, key blocks of 128: expanded form)
    /// and the same tokens decoded one by one (absorbed form) against the fp32 reference, logits
    /// of all 300 positions. f32 weights isolate the attention: within `GoldenTolerance.fp32` of
    /// the logits' magnitude with an f32 cache and `GoldenTolerance.f16Cache` with f16, the
    /// bounds of the short golden prompts. q8/q4: the expanded form must not be less accurate
    /// than the absorbed one (relative RMS error at most 10% larger: the two differ by rounding,
    /// which at these tiny shapes flips a few experts and so moves the error by a few percent
    /// either way).
    func testLongPromptMatchesReference() throws {
        let reference = try ReferenceModel(checkpoint: Fixtures.url("tiny-dsv2"))
        let ids = prompt(reference.config)
        let expected = try reference.forward(tokens: ids, logits: .all)
        reference.attentionForm = .absorbed
        let expectedAbsorbed = try reference.forward(tokens: ids, logits: .all)
        for (preset, cache) in [("f32", KVCacheType.f32), ("f32", .f16), ("q8", .f16), ("q4", .f16)] {
            let engine = try engine(preset: preset, cache: cache)
            let prefill = try engine.forward(tokens: ids, logits: .all)
            engine.resetCache()
            var stepwise: [Float] = []
            for id in ids { stepwise += try engine.forward(tokens: [id], logits: .last) }
            let vocab = engine.config.vocabSize
            let relative = relativeError(prefill, expected)
            print("[engine-expanded] tiny-dsv2 \(preset) cache \(cache), \(ids.count) tokens, logits against the reference: "
                  + "prefill rel \(String(format: "%.3e", relative)) (absorbed reference \(String(format: "%.3e", relativeError(prefill, expectedAbsorbed)))), "
                  + "rms \(String(format: "%.3e", relativeRMS(prefill, expected))), min row cosine \(String(format: "%.7f", engineMinRowCosine(prefill, expected, width: vocab))), "
                  + "top-1 \(String(format: "%.3f", engineTop1Agreement(prefill, expected, width: vocab))); token by token: rel "
                  + "\(String(format: "%.3e", relativeError(stepwise, expected))), rms \(String(format: "%.3e", relativeRMS(stepwise, expected))), top-1 "
                  + "\(String(format: "%.3f", engineTop1Agreement(stepwise, expected, width: vocab)))")
            switch (preset, cache) {
            case ("f32", .f32):
                XCTAssertLessThanOrEqual(relative, GoldenTolerance.fp32)
                XCTAssertLessThanOrEqual(relativeError(prefill, expectedAbsorbed), GoldenTolerance.fp32)
            case ("f32", _):
                XCTAssertLessThanOrEqual(relative, GoldenTolerance.f16Cache)
            default:
                XCTAssertLessThanOrEqual(relativeRMS(prefill, expected), 1.1 * relativeRMS(stepwise, expected), "\(preset)")
            }
        }
    }

    /// Which form a piece of a prompt takes depends on its row count only: several rows are
    /// expanded whatever the cached prefix, one row (decode) absorbed; and a prompt is never cut
    /// into a one-row piece.
    func testFormDependsOnRowsOnly() throws {
        let base = try engine(preset: "q8", cache: .f16, threads: 1, keyBlock: 1024, chunk: Self.promptLength)
        for (rows, past) in [(2, 0), (2, 100_000), (37, 117), (300, 0)] {
            let segment = PassSegment(sequence: base.sequence, rows: 0 ..< rows, past: past, logits: .none)
            XCTAssertTrue(base.attendsExpanded(segment, base.weights.layers[0].attention), "\(rows) rows after \(past)")
        }
        let single = PassSegment(sequence: base.sequence, rows: 0 ..< 1, past: 0, logits: .none)
        XCTAssertFalse(base.attendsExpanded(single, base.weights.layers[0].attention))
        for remaining in 1...40 {
            for budget in 2...12 {
                var left = remaining, pieces: [Int] = []
                while left > 0 {
                    let piece = QuantizedEngine.prefillPiece(remaining: left, budget: budget)
                    pieces.append(piece)
                    left -= piece
                }
                XCTAssertTrue(remaining == 1 || pieces.allSatisfy { $0 >= 2 }, "\(remaining) by \(budget): \(pieces)")
                XCTAssertTrue(pieces.allSatisfy { $0 <= budget + 1 }, "\(remaining) by \(budget): \(pieces)")
            }
        }
    }

    /// The same logits bit for bit with 1, 2 or 3 threads, whole (its feed-forward block in
    /// parts of `feedForwardPartTokens` rows) or in chunks of any size (each attends in the
    /// expanded form, whatever it follows), with any key block, and in a batch next to other
    /// sequences.
    func testResultsDoNotDependOnThreadsChunksOrKeyBlocks() throws {
        let base = try engine(preset: "q8", cache: .f16, threads: 1, keyBlock: 1024, chunk: Self.promptLength)
        let ids = prompt(base.config)
        XCTAssertGreaterThan(ids.count, QuantizedEngine.feedForwardPartTokens)
        let expected = try base.forward(tokens: ids, logits: .all)
        for (threads, keyBlock, chunk) in [(2, 1024, 300), (3, 64, 300), (2, 128, 100), (2, 64, 50), (1, 192, 64),
                                           (2, 64, 37), (1, 128, 2), (2, 64, 3)] {
            let other = try engine(preset: "q8", cache: .f16, threads: threads, keyBlock: keyBlock, chunk: chunk)
            let actual = try other.forward(tokens: ids, logits: .all)
            XCTAssertTrue(same(actual, expected), "\(threads) threads, key block \(keyBlock), chunks of \(chunk)")
        }
        // Batched: the prompt in chunks of 50 next to another sequence's chunks, then its decode tokens.
        let batched = try engine(preset: "q8", cache: .f16, threads: 2, keyBlock: 128, chunk: 300)
        let other = prompt(base.config, length: 120, seed: 9)
        let a = batched.makeSequence(), b = batched.makeSequence()
        var rows: [Float] = []
        for start in stride(from: 0, to: ids.count, by: 50) {
            let chunk = Array(ids[start ..< min(start + 50, ids.count)])
            var entries = [BatchEntry(sequence: a, tokens: chunk, logits: .all)]
            if b.cachedTokens < other.count {
                entries.append(BatchEntry(sequence: b, tokens: Array(other[b.cachedTokens ..< min(b.cachedTokens + 40, other.count)])))
            } else {
                entries.insert(BatchEntry(sequence: b, tokens: [ids[start]]), at: 0)
            }
            let logits = try batched.forward(batch: entries)
            rows += logits[entries.firstIndex { $0.sequence === a }!]
        }
        XCTAssertTrue(same(rows, expected), "batched chunks differ from one pass")
    }
}
