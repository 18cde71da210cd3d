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
    /// (NUMERICS.md), far below the 0.1–6 shifts of the known MLA/MoE mistakes.
    static let f32Tolerance: Float = 1e-4

    private struct Measurement {
        var relative: [String: Float] = [:]
        var cosine: [String: Double] = [:]
        var top1: Double = 0
    }

    private func measure(_ fixture: String, preset: String, cache: KVCacheType) throws -> Measurement {
        let reference = try ReferenceModel(checkpoint: Fixtures.url(fixture))
        let engine = try EngineTestSupport.engine(fixture, preset: preset, cache: cache)
        let ids = try EngineTestSupport.inputIds(fixture)
        let expected = try EngineTestSupport.trace(reference, ids)
        let actual = try EngineTestSupport.trace(engine, ids)
        let config = reference.config
        var m = Measurement()
        var names = (0...config.numHiddenLayers).map(TraceName.hidden) + [TraceName.finalNorm]
        names += (0..<config.numHiddenLayers).map(TraceName.attn)
        var lines: [String] = []
        for name in names + [TraceName.logits] {
            let a = name == TraceName.logits ? actual.logits : try XCTUnwrap(actual.tracer[name]?.floats, "\(fixture): \(name) not traced")
            let b = name == TraceName.logits ? expected.logits : try XCTUnwrap(expected.tracer[name]?.floats)
            let width = name == TraceName.logits ? config.vocabSize : config.hiddenSize
            m.relative[name] = engineRelativeError(a, b)
            m.cosine[name] = engineMinRowCosine(a, b, width: width)
            lines.append("\(name.padded(12)) rel \(String(format: "%.3e", m.relative[name]!))  min-cos \(String(format: "%.7f", m.cosine[name]!))")
        }
        m.top1 = engineTop1Agreement(actual.logits, expected.logits, width: config.vocabSize)
        print("[engine-golden] \(fixture) \(preset) cache \(cache.rawValue): logits top-1 agreement \(String(format: "%.3f", m.top1))\n  "
              + lines.joined(separator: "\n  "))
        return m
    }

    private func hiddenNames(_ fixture: String) throws -> [String] {
        let config = try ModelConfig.load(from: Fixtures.url(fixture))
        return (0...config.numHiddenLayers).map(TraceName.hidden)
    }

    func testF32WeightsMatchReference() throws {
        for fixture in Fixtures.modelCases {
            for cache in [KVCacheType.f32, .f16] {
                let m = try measure(fixture, preset: "f32", cache: cache)
                guard cache == .f32 else { continue }  // f16 cache: measured and printed (see report)
                for name in try hiddenNames(fixture) + [TraceName.finalNorm, TraceName.logits] {
                    XCTAssertLessThanOrEqual(m.relative[name]!, Self.f32Tolerance, "\(fixture) f32: \(name)")
                }
            }
        }
    }

    func testQ8WeightsStayClose() throws {
        for fixture in Fixtures.modelCases {
            let m = try measure(fixture, preset: "q8", cache: .f16)
            for name in try hiddenNames(fixture) {
                XCTAssertGreaterThanOrEqual(m.cosine[name]!, 0.999, "\(fixture) q8: \(name)")
            }
            XCTAssertGreaterThanOrEqual(m.top1, 0.95, "\(fixture) q8: logits top-1 agreement")
        }
    }

    func testQ4WeightsStayClose() throws {
        for fixture in Fixtures.modelCases {
            let m = try measure(fixture, preset: "q4", cache: .f16)
            for name in try hiddenNames(fixture) {
                XCTAssertGreaterThanOrEqual(m.cosine[name]!, 0.99, "\(fixture) q4: \(name)")
            }
        }
    }
}
