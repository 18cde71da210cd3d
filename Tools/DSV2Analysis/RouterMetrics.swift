import Foundation
import DSV2Core

/// Agreement of two routings `router.N.indices` [tokens, top-k] (with their weights, when both
/// sides have them). Top-k order is unspecified (docs/NUMERICS.md item 8), so experts are compared as sets.
public struct RouterMetrics: Equatable, Sendable {
    public var tokens: Int
    /// Mean over tokens of |E_A ∩ E_B| / |E_A ∪ E_B|.
    public var meanJaccard: Double
    /// Fraction of tokens whose chosen expert sets are identical.
    public var identicalFraction: Double
    /// max |w_A(e) − w_B(e)| over the experts chosen by both sides (nil without weights).
    public var weightsMaxAbs: Double?

    public init(tokens: Int, meanJaccard: Double, identicalFraction: Double, weightsMaxAbs: Double?) {
        self.tokens = tokens
        self.meanJaccard = meanJaccard
        self.identicalFraction = identicalFraction
        self.weightsMaxAbs = weightsMaxAbs
    }

    /// `indicesA`/`indicesB` hold `tokens × topK` expert ids row-major; weights (same layout) are optional.
    public init(baselineIndices ia: [Int32], candidateIndices ib: [Int32], topK: Int,
                baselineWeights wa: [Float]? = nil, candidateWeights wb: [Float]? = nil) {
        precondition(topK > 0 && ia.count == ib.count && ia.count % topK == 0)
        let tokens = ia.count / topK
        let useWeights = wa?.count == ia.count && wb?.count == ib.count
        var jaccardSum = 0.0, identical = 0
        var weightsMax = 0.0
        for t in 0..<tokens {
            let ra = ia[t * topK ..< (t + 1) * topK], rb = ib[t * topK ..< (t + 1) * topK]
            let sa = Set(ra), sb = Set(rb)
            let union = sa.union(sb).count
            jaccardSum += union == 0 ? 1 : Double(sa.intersection(sb).count) / Double(union)
            if sa == sb { identical += 1 }
            if useWeights, let wa, let wb {
                for (i, e) in zip(ra.indices, ra) {
                    guard let j = rb.firstIndex(of: e) else { continue }
                    let d = abs(Double(wa[i]) - Double(wb[j]))
                    weightsMax = d.isNaN || weightsMax.isNaN ? .nan : max(weightsMax, d)
                }
            }
        }
        let n = Double(max(tokens, 1))
        self.init(tokens: tokens, meanJaccard: jaccardSum / n, identicalFraction: Double(identical) / n,
                  weightsMaxAbs: useWeights ? weightsMax : nil)
    }
}
