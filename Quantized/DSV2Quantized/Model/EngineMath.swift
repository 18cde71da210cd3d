import Foundation

/// The element-wise math of the quantized engine, in fp32 exactly as the reference computes it
/// (NUMERICS.md items 6-7 and 11): the same operations in the same order, so that with f32
/// weights the two engines differ only by the matrix products' summation order.
enum EngineMath {
    /// RMSNorm of one row: y = w · (x / sqrt(mean(x²) + eps)); the mean of squares in Double
    /// (as the reference: removes summation-order noise). `x` and `y` may be the same memory.
    @inline(__always)
    static func rmsNorm(_ x: UnsafePointer<Float>, width: Int, weight: UnsafePointer<Float>, eps: Float,
                        into y: UnsafeMutablePointer<Float>) {
        var sumOfSquares: Double = 0
        for i in 0..<width { sumOfSquares += Double(x[i]) * Double(x[i]) }
        let inverse = 1 / (Float(sumOfSquares / Double(width)) + eps).squareRoot()
        for i in 0..<width { y[i] = weight[i] * (x[i] * inverse) }
    }

    /// RMSNorm of `rows` rows of `width` values each.
    static func rmsNorm(_ x: UnsafePointer<Float>, rows: Int, width: Int, weight: [Float], eps: Float,
                        into y: UnsafeMutablePointer<Float>) {
        weight.withUnsafeBufferPointer { w in
            for r in 0..<rows { rmsNorm(x + r * width, width: width, weight: w.baseAddress!, eps: eps, into: y + r * width) }
        }
    }

    /// In-place softmax over `count` values (max subtracted, sum in Double), as the reference.
    @inline(__always)
    static func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
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

    /// SiLU(x) = x / (1 + e^−x).
    @inline(__always)
    static func silu(_ x: Float) -> Float { x / (1 + expf(-x)) }

    /// h[i] = silu(gate[i]) · up[i] for `count` values (every MLP, NUMERICS.md item 11).
    @inline(__always)
    static func gatedActivation(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                into h: UnsafeMutablePointer<Float>) {
        for i in 0..<count { h[i] = silu(gate[i]) * up[i] }
    }

    /// out[i] += x[i].
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] += x[i] }
    }
}

/// Rotary embedding of q^R and k^R for one position at a time (NUMERICS.md items 1-3), with the
/// reference's frequencies (`RotaryEmbedding`) and the same fp32 operations, computed on the fly
/// into preallocated scratch (a table for 163 840 positions would cost 42 MB).
struct PositionRotation {
    let half: Int
    let inverseFrequencies: [Float]
    let amplitude: Float

    init(inverseFrequencies: [Float], amplitude: Float) {
        self.inverseFrequencies = inverseFrequencies
        self.amplitude = amplitude
        half = inverseFrequencies.count
    }

    /// cos and sin (times the YaRN amplitude) of `position`·inv_freq[i], i < d/2.
    func angles(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        inverseFrequencies.withUnsafeBufferPointer { f in
            for i in 0..<half {
                let angle = p * f[i]
                cos[i] = cosf(angle) * amplitude
                sin[i] = sinf(angle) * amplitude
            }
        }
    }

    /// Rotates one vector stored in the checkpoint's interleaved layout and writes the half-split
    /// layout the original produces after its de-interleave + rotate_half:
    /// out[i] = x[2i]·cos − x[2i+1]·sin, out[i + d/2] = x[2i+1]·cos + x[2i]·sin. In place is
    /// allowed (`scratch` holds d values).
    @inline(__always)
    func rotate(_ x: UnsafeMutablePointer<Float>, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<2 * half { scratch[i] = x[i] }
        for i in 0..<half {
            let even = scratch[2 * i], odd = scratch[2 * i + 1]
            x[i] = even * cos[i] - odd * sin[i]
            x[i + half] = odd * cos[i] + even * sin[i]
        }
    }
}
