import ArgumentParser
import Foundation

/// Parses `--ids 1,2,3` (commas and/or spaces) into token ids; the engine checks the range.
func parseTokenIDs(_ text: String, option: String = "--ids") throws -> [Int32] {
    let parts = text.split(whereSeparator: { $0 == "," || $0 == " " })
    guard !parts.isEmpty else { throw ValidationError("\(option) holds no token ids") }
    return try parts.map { part in
        guard let id = Int32(part), id >= 0 else {
            throw ValidationError("\(option): \"\(part)\" is not a token id (a non-negative integer)")
        }
        return id
    }
}

/// The index of the largest value, first one on ties (torch.argmax): greedy decoding.
func greedyToken(_ logits: ArraySlice<Float>) -> Int32 {
    var best = logits.startIndex
    for i in logits.indices where logits[i] > logits[best] { best = i }
    return Int32(best - logits.startIndex)
}
