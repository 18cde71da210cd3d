import DSV2Core
import DSV2Formats
import DSV2Quantized
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// Layer-by-layer comparison of the quantized engine (absorbed MLA over the latent cache,
/// threaded kernels) with the fp32 reference on every fixture, at f32, q8 and q4 weights. Every
/// measured number is printed per fixture and per tensor.
final class EngineGoldenTests: XCTestCase {
    /// f32 weights: only summation order and the cache's element type differ from the reference.
    /// 1e-4 of each tensor's largest magnitude: fp32 implementations agree to a few 1e-6 relative
    /// (docs/NUMERICS.md), far below the 0.06–4.2 logit shifts of the known MLA/MoE mistakes.
    static let f32Tolerance: Float = 1e-4

    private struct Measurement {
        var relative: [String: Float] = [:]
        var cosine: [String: Double] = [:]
        /// Min row cosine over the tokens whose expert sets matched the reference's in every MoE
        /// layer up to this tensor's layer (nil when no such token remains).
        var stableCosine: [String: Double] = [:]
        var top1: Double = 0
        var routingFlips = 0
    }

    /// `weightOnly`: the weights quantized by `preset`, then widened back to f32 and run with f32
    /// activations — exact arithmetic on the quantized weights, i.e. the loss inherent to the
    /// weight format, without the engine's int8 activations or f16 cache.
    private func measure(_ fixture: String, preset: String, cache: KVCacheType, weightOnly: Bool = false) throws -> Measurement {
        let reference = try ReferenceModel(checkpoint: Fixtures.url(fixture))
        let engine: QuantizedEngine
        if weightOnly {
            let policy = try XCTUnwrap(QuantizationPolicy.preset(preset))
            let quantized = QuantizingSource(try HFCheckpointSource(folder: Fixtures.url(fixture)), policy: policy)
            engine = try QuantizedEngine(source: QuantizingSource(quantized, policy: .f32), threads: 2, kvCacheType: .f32)
        } else {
            engine = try EngineTestSupport.engine(fixture, preset: preset, cache: cache)
        }
        // Prompt + the golden greedy continuation (teacher forcing): more positions for top-1.
        let ids = try EngineTestSupport.inputIds(fixture) + EngineTestSupport.generatedIds(fixture)
        let expected = try EngineTestSupport.trace(reference, ids)
        let actual = try EngineTestSupport.trace(engine, ids)
        let config = reference.config
        var m = Measurement()
        var names = (0...config.numHiddenLayers).map(TraceName.hidden) + [TraceName.finalNorm]
        names += (0..<config.numHiddenLayers).map(TraceName.attn)
        // Tokens whose routing differs from the reference's, cumulatively per layer: q8/q4 noise
        // (~1e-2 relative) is far above the fixtures' 2e-4 routing margins, and a flipped expert
        // changes that token's layer output by O(1).
        let tokens = ids.count, k = config.expertsPerToken
        var flippedUpTo = [[Bool]](repeating: [Bool](repeating: false, count: tokens), count: config.numHiddenLayers + 1)
        var flipped = [Bool](repeating: false, count: tokens)
        for l in 0..<config.numHiddenLayers {
            if config.isMoELayer(l) {
                let a = try XCTUnwrap(actual.tracer[TraceName.routerIndices(l)]?.int32s)
                let b = try XCTUnwrap(expected.tracer[TraceName.routerIndices(l)]?.int32s)
                for t in 0..<tokens where Set(a[t * k ..< (t + 1) * k]) != Set(b[t * k ..< (t + 1) * k]) {
                    if !flipped[t] { m.routingFlips += 1 }
                    flipped[t] = true
                }
            }
            flippedUpTo[l + 1] = flipped
        }
        func layerOf(_ name: String) -> Int {
            if name.hasPrefix("hidden.") { return Int(name.dropFirst(7))! }
            if name.hasPrefix("attn.") { return Int(name.dropFirst(5))! }  // attention of layer l sees routing < l
            return config.numHiddenLayers
        }
        var lines: [String] = []
        for name in names + [TraceName.logits] {
            let a = name == TraceName.logits ? actual.logits : try XCTUnwrap(actual.tracer[name]?.floats, "\(fixture): \(name) not traced")
            let b = name == TraceName.logits ? expected.logits : try XCTUnwrap(expected.tracer[name]?.floats)
            let width = name == TraceName.logits ? config.vocabSize : config.hiddenSize
            m.relative[name] = relativeError(a, b)
            m.cosine[name] = engineMinRowCosine(a, b, width: width)
            let stable = (0..<tokens).filter { !flippedUpTo[layerOf(name)][$0] }
            if !stable.isEmpty {
                let pick = { (x: [Float]) in stable.flatMap { x[$0 * width ..< ($0 + 1) * width] } }
                m.stableCosine[name] = engineMinRowCosine(pick(a), pick(b), width: width)
            }
            lines.append("\(name.padded(12)) rel \(String(format: "%.3e", m.relative[name]!))  min-cos \(String(format: "%.7f", m.cosine[name]!))"
                         + "  min-cos(routing unchanged, \(stable.count)/\(tokens) tokens) \(m.stableCosine[name].map { String(format: "%.7f", $0) } ?? "-")")
        }
        m.top1 = engineTop1Agreement(actual.logits, expected.logits, width: config.vocabSize)
        print("[engine-golden] \(fixture) \(weightOnly ? preset + " weights only (f32 arithmetic)" : preset + " cache " + cache.rawValue): \(tokens) positions, logits top-1 agreement "
              + "\(String(format: "%.3f", m.top1)), tokens with a routing flip \(m.routingFlips)\n  "
              + lines.joined(separator: "\n  "))
        return m
    }

    private func hiddenNames(_ fixture: String) throws -> [String] {
        let config = try ModelConfig.load(from: Fixtures.url(fixture))
        return (0...config.numHiddenLayers).map(TraceName.hidden)
    }

    func testF32WeightsMatchReference() throws {
        for fixture in Fixtures.modelCases {
            for cache in KVCacheType.allCases {
                let m = try measure(fixture, preset: "f32", cache: cache)
                // Why these are sound: `GoldenTolerance.f16Cache` and `.bf16Cache`.
                let tolerance: Float
                switch cache {
                case .f32: tolerance = Self.f32Tolerance
                case .f16: tolerance = GoldenTolerance.f16Cache
                case .bf16: tolerance = GoldenTolerance.bf16Cache
                }
                for name in try hiddenNames(fixture) + [TraceName.finalNorm, TraceName.logits] {
                    XCTAssertLessThanOrEqual(m.relative[name]!, tolerance, "\(fixture) f32 weights, \(cache) cache: \(name)")
                }
                XCTAssertEqual(m.routingFlips, 0, "\(fixture) f32: routing must match the reference")
                XCTAssertEqual(m.top1, 1, "\(fixture) f32: greedy choices must match the reference")
            }
        }
    }

    /// q8: cosine ≥ 0.999 at every layer, q4: ≥ 0.99, over the tokens whose expert sets match
    /// the reference's up to that layer (the all-token minimum is printed: a token whose routing
    /// flipped — the fixtures' routing margins are 2e-4, q8's noise ~1e-2 — differs by O(1) at that
    /// layer by construction); q8 greedy top-1 agreement ≥ 95% over prompt + golden continuation.
    ///
    /// The engine's loss has two equal-sized sources: the weight format and the int8 activations
    /// the q8/q4 kernels multiply (both round to ~1/254 of a block's range for q8). Where exact
    /// arithmetic on the same quantized weights (`weightOnly`) already uses more than half of a
    /// bound's budget (1 − cos_ideal > (1 − bound)/2) — the weight format's own loss on these tiny
    /// random-weight fixtures, not the engine's — the test says so ("out of reach") and instead
    /// requires the engine to add at most as much loss again as the format
    /// (1 − cos ≤ 2·(1 − cos_ideal) + 1e-5; top-1 at most one position worse).
    private func checkQuantized(preset: String, cosineBound: Double, top1Bound: Double?) throws {
        for fixture in Fixtures.modelCases {
            let m = try measure(fixture, preset: preset, cache: .f16)
            let ideal = try measure(fixture, preset: preset, cache: .f32, weightOnly: true)
            for name in try hiddenNames(fixture) {
                guard let cosine = m.stableCosine[name] else { continue }
                let idealCosine = ideal.stableCosine[name] ?? ideal.cosine[name]!
                if cosine >= cosineBound || 1 - idealCosine <= (1 - cosineBound) / 2 {
                    XCTAssertGreaterThanOrEqual(cosine, cosineBound, "\(fixture) \(preset): \(name)")
                } else {
                    print("[engine-golden] \(fixture) \(preset) \(name): bound \(cosineBound) out of reach for the weight format "
                          + "(exact arithmetic on the quantized weights: \(String(format: "%.5f", idealCosine))); engine \(String(format: "%.5f", cosine))")
                    XCTAssertLessThanOrEqual(1 - cosine, 2 * (1 - idealCosine) + 1e-5, "\(fixture) \(preset): \(name) vs weight-only")
                }
            }
            guard let top1Bound else { continue }
            let positions = Double(try EngineTestSupport.inputIds(fixture).count + EngineTestSupport.generatedIds(fixture).count)
            if m.top1 >= top1Bound || ideal.top1 >= top1Bound {
                XCTAssertGreaterThanOrEqual(m.top1, top1Bound, "\(fixture) \(preset): logits top-1 agreement")
            } else {
                print("[engine-golden] \(fixture) \(preset) top-1: bound \(top1Bound) out of reach for the weight format "
                      + "(exact arithmetic on the quantized weights: \(String(format: "%.3f", ideal.top1))); engine \(String(format: "%.3f", m.top1))")
                XCTAssertGreaterThanOrEqual(m.top1, ideal.top1 - 1 / positions - 1e-9, "\(fixture) \(preset): top-1 vs weight-only")
            }
        }
    }

    func testQ8WeightsStayClose() throws {
        try checkQuantized(preset: "q8", cosineBound: 0.999, top1Bound: 0.95)
    }

    func testQ4WeightsStayClose() throws {
        try checkQuantized(preset: "q4", cosineBound: 0.99, top1Bound: nil)
    }
}
