import DSV2Core
import Foundation
import XCTest

/// One fixture: its checkpoint folder and golden tensors.
public struct GoldenCase {
    public let name: String
    public let folder: URL
    public let golden: SafetensorsFile
    public let config: ModelConfig

    public init(_ name: String) throws {
        self.name = name
        folder = Fixtures.url(name)
        golden = try Fixtures.golden(name)
        config = try ModelConfig.load(from: folder)
    }

    public func floats(_ name: String) throws -> [Float] { try golden.floats(name) }
    public func int32s(_ name: String) throws -> [Int32] { try golden.int32s(name) }

    public var inputIds: [Int32] { get throws { try int32s("input_ids") } }
    public var generatedIds: [Int32] { get throws { try int32s("generated_ids") } }
}

/// Greedy choice: the first index of the largest logit (as torch.argmax).
public func argmax(_ row: ArraySlice<Float>) -> Int {
    var best = row.startIndex
    for i in row.indices where row[i] > row[best] { best = i }
    return best - row.startIndex
}

/// Greedy decode of `count` tokens after a prefill whose last logits row is `lastRow`;
/// returns the ids and the [count, vocab] logits that chose them (row 0 = `lastRow`).
public func greedyDecode(_ model: LanguageModel, lastRow: [Float], count: Int) throws -> (ids: [Int32], logits: [Float]) {
    var ids: [Int32] = [], logits: [Float] = []
    var row = lastRow
    for step in 0..<count {
        logits += row
        let next = Int32(argmax(row[...]))
        ids.append(next)
        if step + 1 < count { row = try model.forward(tokens: [next], logits: .last, tracer: nil) }
    }
    return (ids, logits)
}

/// The tolerances of the golden comparisons, relative to each tensor's largest magnitude.
public enum GoldenTolerance {
    /// fp32 against DeepSeek's own code: independent fp32 and float64 implementations agree with
    /// the golden files to ~1e-5 absolute on O(1)–O(5) tensors (golden.json cross_check), i.e. a
    /// few 1e-6 relative; 1e-4 leaves >10× headroom for summation order yet is far below the
    /// 0.1–6 shifts of the known pitfalls (golden.json pitfall_sensitivity).
    public static let fp32: Float = 1e-4

    /// f16 latent cache with f32 weights: rounding c_KV and k^R to f16 perturbs every cached
    /// value by up to 2^-12 relative (f16's half ulp), which the attention output inherits; it
    /// measured 1.3e-4 … 6.1e-4 of the tensors' magnitudes on these fixtures (the f32-cache run
    /// of the same engine: ≤ 2e-6). 2e-3 = 4 × f16's unit roundoff (2^-11) bounds that, still
    /// 50× below the 0.1–6 shifts of the known mistakes.
    public static let f16Cache: Float = 2e-3

    /// bf16 latent cache with f32 weights: the same reasoning at bf16's 8 significant bits — every
    /// cached value within 2^-9 relative (half an ulp), and with AVX-512 BF16 the query and the
    /// attention weights rounded likewise (vdpbf16ps). It measured 3.7e-3 … 7.4e-3 on these
    /// fixtures; 1.6e-2 = 4 × bf16's unit roundoff (2^-8), 8 × the f16 bound as the rounding is
    /// 8× coarser, still ≥ 6× below the 0.1–6 shifts of the known mistakes.
    public static let bf16Cache: Float = 1.6e-2
}
