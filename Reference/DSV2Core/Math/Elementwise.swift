import Foundation

/// The element-wise fp32 operations of the model, on raw pointers so that callers on a hot path
/// allocate nothing. Both engines call these, so they compute the same values in the same order
/// (docs/NUMERICS.md items 6-7 and 11); `@inlinable` lets the quantized engine inline them.
public enum Elementwise {
    /// RMSNorm of one row (docs/NUMERICS.md item 6): y = weight · x / sqrt(mean(x²) + eps), as the
    /// original in fp32. The mean of squares is accumulated in Double, which only removes
    /// summation-order noise. `x` and `y` may be the same memory.
    @inlinable @inline(__always)
    public static func rmsNorm(_ x: UnsafePointer<Float>, width: Int, weight: UnsafePointer<Float>, eps: Float,
                               into y: UnsafeMutablePointer<Float>) {
        var sumOfSquares: Double = 0
        for i in 0..<width { sumOfSquares += Double(x[i]) * Double(x[i]) }
        let inverse = 1 / (Float(sumOfSquares / Double(width)) + eps).squareRoot()
        for i in 0..<width { y[i] = weight[i] * (x[i] * inverse) }
    }

    /// RMSNorm of each of `rows` rows of `width` values.
    @inlinable
    public static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: [Float], eps: Float,
                               into y: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows { rmsNorm(x + r * width, width: width, weight: w.baseAddress!, eps: eps, into: y + r * width) }
        }
    }

    /// In-place softmax over `x[0..<count]` in fp32 (max subtracted first; sum in Double).
    @inlinable @inline(__always)
    public static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
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
    @inlinable @inline(__always)
    public static func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }
}
