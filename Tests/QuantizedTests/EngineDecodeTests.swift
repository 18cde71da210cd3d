import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// Greedy generation through the f16 latent cache (f32 weights) against the reference's greedy
/// tokens (the golden `generated_ids` of DeepSeek's code, which the reference reproduces), and
/// the figures the benchmark reports.
final class EngineDecodeTests: XCTestCase {
    func testGreedyDecodeThroughF16CacheMatchesReference() throws {
        for fixture in Fixtures.modelCases {
            let engine = try EngineTestSupport.engine(fixture, preset: "f32", cache: .f16)
            let ids = try EngineTestSupport.inputIds(fixture)
            let expected = try EngineTestSupport.generatedIds(fixture)
            var row = try engine.forward(tokens: ids, logits: .last)
            var generated: [Int32] = []
            for step in 0..<expected.count {
                let next = Int32(engineArgmax(row[...]))
                generated.append(next)
                if step + 1 < expected.count { row = try engine.forward(tokens: [next], logits: .last) }
            }
            print("[engine-decode] \(fixture): \(generated.count) greedy tokens through the f16 cache, "
                  + "match reference: \(generated == expected)")
            XCTAssertEqual(generated, expected, "\(fixture): greedy tokens differ from the reference")
        }
    }

    func testBenchmarkFigures() throws {
        let engine = try EngineTestSupport.engine("tiny-dsv2", preset: "q8")
        let c = engine.config
        // [c_KV | k^R] in f16: (kv_lora_rank + qk_rope_head_dim) × 2 bytes per layer.
        XCTAssertEqual(engine.kvCacheBytesPerTokenPerLayer, (c.kvLoraRank + c.qkRopeHeadDim) * 2)
        XCTAssertEqual(engine.kvCacheBytesPerToken, engine.kvCacheBytesPerTokenPerLayer * c.numHiddenLayers)
        // Real shapes: 512 + 64 values → 1152 bytes.
        XCTAssertEqual((512 + 64) * KVCacheType.f16.bytesPerValue, 1152)
        // A decode step reads less than all weights (only top-k of the routed experts) but more
        // than lm_head alone.
        XCTAssertLessThan(engine.weightBytesReadPerToken, engine.weightBytesResident)
        XCTAssertGreaterThan(engine.weightBytesReadPerToken, c.vocabSize * c.hiddenSize)
        XCTAssertGreaterThan(engine.peakScratchBytes, 0)
        print("[engine-figures] tiny-dsv2 q8: kv \(engine.kvCacheBytesPerTokenPerLayer) B/token/layer, "
              + "\(engine.kvCacheBytesPerToken) B/token; weights read per token \(engine.weightBytesReadPerToken) B of "
              + "\(engine.weightBytesResident) B resident; scratch \(engine.peakScratchBytes) B; types \(engine.weights.typeSummary)")
    }
}
