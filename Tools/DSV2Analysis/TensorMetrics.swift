import Foundation
import DSV2Core

/// Elementwise agreement of a candidate tensor B with a baseline A, accumulated in float64.
///
/// Identical inputs give exactly maxAbs 0, relativeRMS 0 and cosine 1: the cosine is computed as
/// dot / sqrt(|A|²·|B|²), and sqrt(x·x) == |x| in IEEE round-to-nearest, so no rounding sneaks in.
public struct TensorMetrics: Equatable, Sendable {
    /// max |A − B|
    public var maxAbs: Double
    /// sqrt(Σ(A − B)² / ΣA²): the error relative to the baseline's size (0 when equal, +inf when A is all zeros and B is not).
    public var relativeRMS: Double
    /// A·B / (|A| |B|), clamped to [−1, 1]; 1 when both are all zeros, 0 when exactly one is.
    public var cosine: Double

    public init(maxAbs: Double, relativeRMS: Double, cosine: Double) {
        self.maxAbs = maxAbs
        self.relativeRMS = relativeRMS
        self.cosine = cosine
    }

    /// Compares two equally long arrays (flattened tensors). A NaN anywhere makes every metric NaN,
    /// so thresholds always catch it.
    public init(baseline a: [Float], candidate b: [Float]) {
        precondition(a.count == b.count, "TensorMetrics: lengths differ (callers check shapes first)")
        var maxAbs = 0.0, diff2 = 0.0, aa = 0.0, bb = 0.0, ab = 0.0
        var sawNaN = false
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                for i in 0..<pa.count {
                    let x = Double(pa[i]), y = Double(pb[i])
                    let d = x - y
                    if d.isNaN { sawNaN = true }
                    maxAbs = max(maxAbs, abs(d))
                    diff2 += d * d
                    aa += x * x
                    bb += y * y
                    ab += x * y
                }
            }
        }
        if sawNaN {
            self.init(maxAbs: .nan, relativeRMS: .nan, cosine: .nan)
            return
        }
        let relativeRMS: Double = aa > 0 ? (diff2 / aa).squareRoot() : (diff2 == 0 ? 0 : .infinity)
        let cosine: Double
        if aa == 0 && bb == 0 {
            cosine = 1
        } else if aa == 0 || bb == 0 {
            cosine = 0
        } else {
            cosine = min(1, max(-1, ab / (aa * bb).squareRoot()))
        }
        self.init(maxAbs: maxAbs, relativeRMS: relativeRMS, cosine: cosine)
    }
}
