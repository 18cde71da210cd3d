import XCTest
import TestSupport
@testable import DSV2Converter
import DSV2Core
import DSV2Reference

/// The synthetic weights behave: the fp32 reference runs them with finite activations of order 1
/// through all layers, and the routers spread tokens over most experts.
final class SynthReferenceTests: XCTestCase {
    func testV2StructureRunsWithSpreadRouting() throws { try check(SynthTestConfigs.v2Style) }
    func testLiteStructureRunsWithSpreadRouting() throws { try check(SynthTestConfigs.liteStyle) }

    private func check(_ json: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let folder = TemporaryDirectory()
        let spec = try SynthTestConfigs.spec(json, in: folder)
        let hf = folder.file("hf")
        try Synthesizer.writeHuggingFace(spec, seed: 3, to: hf)
        let model = try ReferenceModel(checkpoint: hf)
        let config = model.config
        let tokens: [Int32] = (0..<32).map { Int32(($0 * 7919 + 13) % config.vocabSize) }
        let tracer = RecordingTracer(patterns: ["hidden.*", "router.*"])
        let logits = try model.forward(tokens: tokens, logits: .all, tracer: tracer)
        XCTAssertEqual(logits.count, tokens.count * config.vocabSize, file: file, line: line)
        XCTAssertTrue(logits.allSatisfy(\.isFinite), "logits finite", file: file, line: line)
        // Logits of order 1 (lm_head is N(0, 1/hidden) on a normalised vector): spread in (0.3, 3).
        let logitRMS = (logits.reduce(0) { $0 + Double($1 * $1) } / Double(logits.count)).squareRoot()
        XCTAssertTrue((0.3...3).contains(logitRMS), "logit RMS \(logitRMS)", file: file, line: line)
        // Residual stream stays O(1): RMS of the last hidden state within (0.5, 4) (≈ √2 by design).
        let last = try XCTUnwrap(tracer[TraceName.hidden(config.numHiddenLayers)]?.floats, file: file, line: line)
        let hiddenRMS = (last.reduce(0) { $0 + Double($1 * $1) } / Double(last.count)).squareRoot()
        XCTAssertTrue((0.5...4).contains(hiddenRMS), "hidden RMS \(hiddenRMS)", file: file, line: line)
        // Every MoE layer uses at least half of its experts over 32 tokens (a collapsed router
        // would keep picking the same top-k).
        for layer in config.moeLayers {
            let indices = try XCTUnwrap(tracer[TraceName.routerIndices(layer)]?.int32s, file: file, line: line)
            XCTAssertGreaterThanOrEqual(Set(indices).count, config.routedExpertCount / 2, "layer \(layer) experts used", file: file, line: line)
        }
        // Greedy decoding through the cache stays finite too.
        let step = try model.forward(tokens: [Int32(5)], logits: .last)
        XCTAssertTrue(step.allSatisfy(\.isFinite), file: file, line: line)
    }
}
