import Foundation

/// A token with its log-probability under the model (natural log of the softmax of the raw
/// logits: before temperature, top-k/top-p and penalties, as OpenAI reports them).
struct TokenLogprob: Sendable, Equatable {
    var id: Int
    var logprob: Float
}

/// The chosen token's log-probability and the most likely alternatives at one position.
struct PositionLogprobs: Sendable, Equatable {
    var chosen: TokenLogprob
    /// The `count` most likely tokens, most likely first (ties: lower id first).
    var top: [TokenLogprob]
}

enum LogProbabilities {
    /// Stands for log(0) in JSON, which has no infinity (OpenAI's value).
    static let floor: Float = -9999

    /// log softmax(logits)[chosen] and the `top` most likely tokens, in Double over the ids in
    /// order (the same logits give the same figures everywhere). NaN logits count as -inf.
    static func at(_ logits: UnsafeBufferPointer<Float>, chosen: Int, top count: Int) -> PositionLogprobs {
        var maximum = -Double.infinity
        for v in logits where !v.isNaN { maximum = max(maximum, Double(v)) }
        var sum = 0.0
        if maximum.isFinite { for v in logits where !v.isNaN { sum += exp(Double(v) - maximum) } }
        let logSum = maximum.isFinite ? maximum + log(sum) : 0
        func logprob(_ id: Int) -> Float {
            guard id >= 0, id < logits.count, !logits[id].isNaN, maximum.isFinite else { return floor }
            return max(floor, Float(Double(logits[id]) - logSum))
        }
        // The `count` best ids, kept sorted (count ≤ 20, so insertion is cheap).
        var best: [Int] = []
        if count > 0 {
            best.reserveCapacity(count + 1)
            func better(_ a: Int, _ b: Int) -> Bool {
                let x = logits[a].isNaN ? -Float.infinity : logits[a], y = logits[b].isNaN ? -Float.infinity : logits[b]
                return x != y ? x > y : a < b
            }
            for id in 0..<logits.count {
                if best.count == count, !better(id, best[count - 1]) { continue }
                var position = best.count
                while position > 0 && better(id, best[position - 1]) { position -= 1 }
                best.insert(id, at: position)
                if best.count > count { best.removeLast() }
            }
        }
        return PositionLogprobs(chosen: TokenLogprob(id: chosen, logprob: logprob(chosen)),
                                top: best.map { TokenLogprob(id: $0, logprob: logprob($0)) })
    }

    static func at(_ logits: [Float], chosen: Int, top count: Int) -> PositionLogprobs {
        logits.withUnsafeBufferPointer { at($0, chosen: chosen, top: count) }
    }
}
