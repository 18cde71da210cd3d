import DSV2Core
import DSV2Formats
import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// Shared helpers of the engine tests (golden comparisons against the reference engine).
enum EngineTestSupport {
    /// The quantized engine for a fixture, quantized in memory from its Hugging Face folder.
    static func engine(_ fixture: String, preset: String, threads: Int = 2,
                       cache: KVCacheType = .f16) throws -> QuantizedEngine {
        let policy = try XCTUnwrap(QuantizationPolicy.preset(preset), "unknown preset \(preset)")
        let source = QuantizingSource(try HFCheckpointSource(folder: Fixtures.url(fixture)), policy: policy)
        return try QuantizedEngine(source: source, threads: threads, kvCacheType: cache)
    }

    static func inputIds(_ fixture: String) throws -> [Int32] {
        try Fixtures.golden(fixture).int32s("input_ids")
    }

    static func generatedIds(_ fixture: String) throws -> [Int32] {
        try Fixtures.golden(fixture).int32s("generated_ids")
    }

    /// Runs `model` on `ids` (empty cache) and returns the traced tensors and the logits [T, vocab].
    static func trace(_ model: LanguageModel, _ ids: [Int32]) throws -> (tracer: RecordingTracer, logits: [Float]) {
        model.resetCache()
        let tracer = RecordingTracer(patterns: TraceName.goldenPatterns + ["kv_latent.*", "moe.*"])
        let logits = try model.forward(tokens: ids, logits: .all, tracer: tracer)
        return (tracer, logits)
    }
}

/// The smallest cosine similarity over the rows of two [rows, width] tensors (per token: a
/// whole-tensor cosine would let large rows hide a bad one).
func engineMinRowCosine(_ a: [Float], _ b: [Float], width: Int) -> Double {
    precondition(a.count == b.count && a.count % width == 0)
    var worst = 1.0
    for r in 0..<(a.count / width) {
        var dot = 0.0, na = 0.0, nb = 0.0
        for i in r * width ..< (r + 1) * width {
            dot += Double(a[i]) * Double(b[i]); na += Double(a[i]) * Double(a[i]); nb += Double(b[i]) * Double(b[i])
        }
        let cosine = na == 0 || nb == 0 ? (na == nb ? 1 : 0) : dot / (na.squareRoot() * nb.squareRoot())
        worst = min(worst, cosine)
    }
    return worst
}

/// Fraction of rows whose argmax (first index of the largest value) agrees.
func engineTop1Agreement(_ a: [Float], _ b: [Float], width: Int) -> Double {
    let rows = a.count / width
    var same = 0
    for r in 0..<rows where engineArgmax(a[r * width ..< (r + 1) * width]) == engineArgmax(b[r * width ..< (r + 1) * width]) {
        same += 1
    }
    return Double(same) / Double(max(rows, 1))
}

func engineArgmax(_ row: ArraySlice<Float>) -> Int {
    var best = row.startIndex
    for i in row.indices where row[i] > row[best] { best = i }
    return best - row.startIndex
}

extension String {
    func padded(_ width: Int) -> String { count >= width ? self : self + String(repeating: " ", count: width - count) }
}
