import Foundation
import DSV2Core

/// Log-softmax and the distribution-level comparisons of logits rows, in float64.
public enum LogSoftmax {
    /// log softmax(row) in float64, numerically stable: x − (m + log Σ exp(x − m)) with m = max x.
    public static func row(_ row: UnsafeBufferPointer<Float>) -> [Double] {
        var m = -Double.infinity
        for x in row { m = max(m, Double(x)) }
        var sum = 0.0
        for x in row { sum += exp(Double(x) - m) }
        let logSum = m + log(sum)
        return row.map { Double($0) - logSum }
    }

    /// −log p(target) for one logits row, in float64.
    public static func negativeLogLikelihood(_ row: UnsafeBufferPointer<Float>, target: Int) -> Double {
        var m = -Double.infinity
        for x in row { m = max(m, Double(x)) }
        var sum = 0.0
        for x in row { sum += exp(Double(x) - m) }
        return m + log(sum) - Double(row[target])
    }

    /// KL(P‖Q) = Σ p (log p − log q) from two log-probability rows. Rounding can make a near-zero
    /// result slightly negative; it is clamped at 0 (KL ≥ 0 mathematically). Identical rows give exactly 0.
    public static func klDivergence(_ logP: [Double], _ logQ: [Double]) -> Double {
        var kl = 0.0
        for i in 0..<logP.count {
            let lp = logP[i]
            kl += exp(lp) * (lp - logQ[i])
        }
        return kl.isNaN ? .nan : max(0, kl)
    }

    /// Index of the largest value (the lowest index on ties).
    public static func argmax(_ row: UnsafeBufferPointer<Float>) -> Int {
        var best = 0
        for i in 1..<row.count where row[i] > row[best] { best = i }
        return best
    }

    /// The indices of the `k` largest values (ties broken by the lower index), as a set.
    public static func topK(_ row: UnsafeBufferPointer<Float>, _ k: Int) -> Set<Int> {
        let k = min(k, row.count)
        var best: [Int] = []  // sorted by (value desc, index asc), at most k
        best.reserveCapacity(k + 1)
        for i in 0..<row.count {
            let v = row[i]
            if best.count == k, let last = best.last, !(v > row[last]) { continue }
            var at = best.count
            while at > 0 && v > row[best[at - 1]] { at -= 1 }
            best.insert(i, at: at)
            if best.count > k { best.removeLast() }
        }
        return Set(best)
    }
}

/// Agreement of two logits tensors [rows, vocab] as next-token distributions. KL is KL(A‖B) with
/// A the baseline.
public struct LogitMetrics: Equatable, Sendable {
    public var rows: Int
    /// Fraction of rows whose argmax is the same.
    public var top1Agreement: Double
    /// Mean over rows of |top5(A) ∩ top5(B)| / 5.
    public var top5Overlap: Double
    /// Mean and max over rows of KL(softmax A ‖ softmax B), in nats.
    public var klMean: Double
    public var klMax: Double

    public init(rows: Int, top1Agreement: Double, top5Overlap: Double, klMean: Double, klMax: Double) {
        self.rows = rows
        self.top1Agreement = top1Agreement
        self.top5Overlap = top5Overlap
        self.klMean = klMean
        self.klMax = klMax
    }

    /// `a` and `b` hold `rows × vocab` values row-major.
    public init(baseline a: [Float], candidate b: [Float], vocab: Int) {
        precondition(vocab > 0 && a.count == b.count && a.count % vocab == 0)
        let rows = a.count / vocab
        var top1 = 0, overlap = 0, klSum = 0.0, klMax = 0.0
        let k = min(5, vocab)
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for r in 0..<rows {
                    let ra = UnsafeBufferPointer(rebasing: pa[r * vocab ..< (r + 1) * vocab])
                    let rb = UnsafeBufferPointer(rebasing: pb[r * vocab ..< (r + 1) * vocab])
                    if LogSoftmax.argmax(ra) == LogSoftmax.argmax(rb) { top1 += 1 }
                    overlap += LogSoftmax.topK(ra, k).intersection(LogSoftmax.topK(rb, k)).count
                    let kl = LogSoftmax.klDivergence(LogSoftmax.row(ra), LogSoftmax.row(rb))
                    klSum += kl
                    klMax = kl.isNaN || klMax.isNaN ? .nan : max(klMax, kl)
                }
            }
        }
        let n = Double(max(rows, 1))
        self.init(rows: rows, top1Agreement: Double(top1) / n, top5Overlap: Double(overlap) / (n * Double(k)),
                  klMean: klSum / n, klMax: klMax)
    }
}
