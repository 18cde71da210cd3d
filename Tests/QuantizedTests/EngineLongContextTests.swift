import DSV2Core
@testable import DSV2Quantized
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// Contexts long enough that a token's attention runs in several blocks of cached rows
/// (`LatentAttention`: blocks of 64 rows up to 2048 rows), which a decode step spreads over the
/// threads and merges by log-sum-exp. The fixtures' prompts are shorter than one block.
final class EngineLongContextTests: XCTestCase {
    /// 300 tokens of tiny-dsv2: decode steps at 290 … 299 cached rows see 5 blocks.
    static let contextTokens = 300
    static let decodeSteps = 10

    static func tokens(vocabulary: Int) -> [Int32] {
        var random = SplitMix64(seed: 16)
        return (0..<contextTokens).map { _ in Int32(random.next() % UInt64(vocabulary)) }
    }

    /// The block partition depends only on the context length, so 1, 2 and 3 threads give the
    /// same logits bit for bit; and a batch of several sequences' decode steps (more absorbed
    /// rows than the phased split takes: each participant then takes whole tokens) equals
    /// each sequence decoding alone (each token's blocks spread over the threads).
    func testBlocksDoNotDependOnThreadsOrPass() throws {
        var results: [[Float]] = []
        let prompt = Self.contextTokens - Self.decodeSteps
        for threads in [1, 2, 3] {
            let engine = try EngineTestSupport.engine("tiny-dsv2", preset: "q8", threads: threads)
            let ids = Self.tokens(vocabulary: engine.config.vocabSize)
            var logits = try engine.forward(tokens: Array(ids.prefix(prompt)), logits: .last)
            for id in ids.suffix(Self.decodeSteps) { logits += try engine.forward(tokens: [id], logits: .last) }
            results.append(logits)
            if threads == 2 {
                // Sequences with the same prompt, each decoding the next token: one step of 5 rows.
                let vocab = engine.config.vocabSize, count = 5
                XCTAssertGreaterThan(count, QuantizedEngine.phasedAttentionTokens(participants: threads))
                let sequences = (0..<count).map { _ in engine.makeSequence() }
                let prompts = try engine.forward(batch: sequences.map { BatchEntry(sequence: $0, tokens: Array(ids.prefix(prompt))) })
                for rows in prompts { XCTAssertTrue(zip(rows, logits.prefix(vocab)).allSatisfy { $0.bitPattern == $1.bitPattern }) }
                let step = try engine.forward(batch: sequences.map { BatchEntry(sequence: $0, tokens: [ids[prompt]]) })
                for rows in step {
                    XCTAssertTrue(zip(rows, logits[vocab ..< 2 * vocab]).allSatisfy { $0.bitPattern == $1.bitPattern },
                                  "a batched decode step must equal the lone one")
                }
            }
        }
        for r in results.dropFirst() {
            XCTAssertTrue(zip(r, results[0]).allSatisfy { $0.bitPattern == $1.bitPattern }, "logits depend on the thread count")
        }
    }

    /// Against the fp32 reference at 300 positions (every row's logits): with f32 weights and
    /// cache only the summation order differs (blocks, the log-sum-exp merge, the scale folded
    /// into the query), so the fixtures' fp32 tolerance holds (`GoldenTolerance.fp32`: fp32
    /// implementations agree to a few 1e-6); with the f16 cache, `GoldenTolerance.f16Cache`.
    /// The bf16 cache is held to the bounds the golden tests set for q8 weights (every row's
    /// cosine ≥ 0.999, greedy top-1 ≥ 95%): its rounding (2^-9 relative) is finer than q8's, but
    /// over 300 positions of this random model a near-tie of the router or of the greedy token
    /// can flip, which moves that row by O(1) and rules out an elementwise bound (measured:
    /// largest row 3.5e-2 of the logits' range, cosine 0.99953, top-1 0.997).
    func testLongContextMatchesReference() throws {
        let reference = try ReferenceModel(checkpoint: Fixtures.url("tiny-dsv2"))
        let ids = Self.tokens(vocabulary: reference.config.vocabSize)
        let expected = try reference.forward(tokens: ids, logits: .all)
        let vocab = reference.config.vocabSize
        for cache in [KVCacheType.f32, .f16, .bf16] {
            let engine = try EngineTestSupport.engine("tiny-dsv2", preset: "f32", cache: cache)
            let actual = try engine.forward(tokens: ids, logits: .all)
            let error = relativeError(actual, expected), cosine = engineMinRowCosine(actual, expected, width: vocab)
            let top1 = engineTop1Agreement(actual, expected, width: vocab)
            print("[engine-long-context] tiny-dsv2 f32 weights, \(cache) cache, \(ids.count) positions: logits relative error "
                  + String(format: "%.2e", error) + ", min row cosine " + String(format: "%.7f", cosine)
                  + ", top-1 agreement " + String(format: "%.3f", top1))
            switch cache {
            case .f32: XCTAssertLessThanOrEqual(error, GoldenTolerance.fp32, "f32 cache")
            case .f16: XCTAssertLessThanOrEqual(error, GoldenTolerance.f16Cache, "f16 cache")
            case .bf16:
                XCTAssertGreaterThanOrEqual(cosine, 0.999, "bf16 cache")
                XCTAssertGreaterThanOrEqual(top1, 0.95, "bf16 cache")
            }
        }
    }
}
