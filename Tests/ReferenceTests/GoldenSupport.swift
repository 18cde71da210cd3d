import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// One fixture: its checkpoint folder and golden tensors.
struct GoldenCase {
    let name: String
    let folder: URL
    let golden: SafetensorsFile
    let config: ModelConfig

    init(_ name: String) throws {
        self.name = name
        folder = Fixtures.url(name)
        golden = try Fixtures.golden(name)
        config = try ModelConfig.load(from: folder)
    }

    func floats(_ name: String) throws -> [Float] { try golden.floats(name) }
    func int32s(_ name: String) throws -> [Int32] { try golden.int32s(name) }

    var inputIds: [Int32] { get throws { try int32s("input_ids") } }
    var generatedIds: [Int32] { get throws { try int32s("generated_ids") } }
}

/// Greedy choice: the first index of the largest logit (as torch.argmax).
func argmax(_ row: ArraySlice<Float>) -> Int {
    var best = row.startIndex
    for i in row.indices where row[i] > row[best] { best = i }
    return best - row.startIndex
}

/// Greedy decode of `count` tokens after a prefill whose last logits row is `lastRow`;
/// returns the ids and the [count, vocab] logits that chose them (row 0 = `lastRow`).
func greedyDecode(_ model: LanguageModel, lastRow: [Float], count: Int) throws -> (ids: [Int32], logits: [Float]) {
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
