import Foundation

/// RMSNorm over each row of `x` [rows, width], in fp32 as the original (NUMERICS.md item 6):
/// y = weight · x / sqrt(mean(x²) + eps). The mean of squares is accumulated in Double, which
/// only removes summation-order noise.
func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: [Float], eps: Float,
             into y: UnsafeMutablePointer<Float>) {
    weight.withUnsafeBufferPointer { w in
        for r in 0..<rows {
            let row = x + r * width, out = y + r * width
            var sumOfSquares: Double = 0
            for i in 0..<width { sumOfSquares += Double(row[i]) * Double(row[i]) }
            let inverse = 1 / (Float(sumOfSquares / Double(width)) + eps).squareRoot()
            for i in 0..<width { out[i] = w[i] * (row[i] * inverse) }
        }
    }
}

func rmsNorm(_ x: [Float], rows: Int, width: Int, weight: [Float], eps: Float) -> [Float] {
    var y = [Float](repeating: 0, count: rows * width)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { rmsNorm(xp.baseAddress!, rows: rows, width: width, weight: weight, eps: eps, into: $0.baseAddress!) }
    }
    return y
}

/// In-place softmax over `x[0..<count]` in fp32 (max subtracted first; sum in Double).
@inline(__always)
func softmaxInPlace(_ x: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0 else { return }
    var maximum = x[0]
    for i in 1..<count where x[i] > maximum { maximum = x[i] }
    var sum: Double = 0
    for i in 0..<count {
        let e = expf(x[i] - maximum)
        x[i] = e
        sum += Double(e)
    }
    let total = Float(sum)
    for i in 0..<count { x[i] /= total }
}

/// SiLU(x) = x · sigmoid(x) = x / (1 + e^−x).
@inline(__always)
func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

/// out[i] += x[i] for `count` values.
@inline(__always)
func addInPlace(_ out: inout [Float], _ x: [Float]) {
    precondition(out.count == x.count)
    out.withUnsafeMutableBufferPointer { o in
        x.withUnsafeBufferPointer { v in
            for i in 0..<o.count { o[i] += v[i] }
        }
    }
}
