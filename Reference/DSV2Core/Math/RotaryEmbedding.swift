import Foundation

/// Rotary position embedding of the decoupled query/key parts (q^R, k^R, paper eqs. 14-15),
/// with YaRN frequencies and amplitude when `rope_scaling` is set (docs/NUMERICS.md items 1-3).
public struct RotaryEmbedding: Sendable {
    /// qk_rope_head_dim.
    public let dimension: Int
    /// One inverse frequency per rotated pair, fp32 as the original computes them.
    public let inverseFrequencies: [Float]
    /// Factor on cos and sin: yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor, mscale_all_dim).
    public let amplitude: Float

    public init(config: ModelConfig) {
        let d = config.qkRopeHeadDim
        dimension = d
        let base = Float(config.ropeTheta)
        // 1 / θ^(2i/d), with the exponent and the power in fp32 as torch computes them.
        let powers = (0..<d / 2).map { i in powf(base, Float(2 * i) / Float(d)) }
        guard let scaling = config.ropeScaling else {
            inverseFrequencies = powers.map { 1 / $0 }
            amplitude = 1
            return
        }
        // YaRN (docs/NUMERICS.md item 2): blend interpolated and extrapolated frequencies with a linear
        // ramp between the correction dimensions of beta_fast and beta_slow. Used at every position.
        let factor = Float(scaling.factor)
        let (low, high) = Self.yarnCorrectionRange(config: config)
        let highAdjusted = low == high ? Double(high) + 0.001 : Double(high)
        var frequencies: [Float] = []
        for i in 0..<d / 2 {
            let extrapolated = 1 / powers[i]
            let interpolated = 1 / (factor * powers[i])
            let ramp = min(max((Float(i) - Float(low)) / Float(highAdjusted - Double(low)), 0), 1)
            let extrapolationMask = 1 - ramp
            frequencies.append(interpolated * (1 - extrapolationMask) + extrapolated * extrapolationMask)
        }
        inverseFrequencies = frequencies
        amplitude = Float(config.ropeAmplitude)
    }

    /// The YaRN correction range [low, high] in rotated-pair index units, clamped to [0, d−1]:
    /// low = floor(d·ln(orig/(2π·β_fast)) / (2·ln θ)), high = ceil(the same with β_slow).
    public static func yarnCorrectionRange(config: ModelConfig) -> (low: Int, high: Int) {
        guard let s = config.ropeScaling else { return (0, 0) }
        let d = Double(config.qkRopeHeadDim)
        func correctionDimension(_ rotations: Double) -> Double {
            d * log(Double(s.originalMaxPositionEmbeddings) / (rotations * 2 * Double.pi)) / (2 * log(config.ropeTheta))
        }
        // Clamped before the conversion so no finite config can trap it; real values are < 100.
        func integer(_ x: Double) -> Int { Int(min(max(x, -1e9), 1e9)) }
        let low = integer(floor(correctionDimension(s.betaFast)))
        let high = integer(ceil(correctionDimension(s.betaSlow)))
        return (max(low, 0), min(high, config.qkRopeHeadDim - 1))
    }

    /// Rotated pairs per vector: d/2.
    public var half: Int { dimension / 2 }

    /// cos and sin of position·inv_freq[i] (angle in fp32), times the amplitude: [d/2] each.
    public func cosSin(position: Int) -> (cos: [Float], sin: [Float]) {
        var c = [Float](repeating: 0, count: half), s = c
        c.withUnsafeMutableBufferPointer { cp in
            s.withUnsafeMutableBufferPointer { sp in angles(position: position, cos: cp.baseAddress!, sin: sp.baseAddress!) }
        }
        return (c, s)
    }

    /// `cosSin(position:)` written into `cos` and `sin` (d/2 values each): no allocation, for a
    /// decode step.
    public func angles(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        inverseFrequencies.withUnsafeBufferPointer { f in
            for i in 0..<half {
                let angle = p * f[i]
                cos[i] = cosf(angle) * amplitude
                sin[i] = sinf(angle) * amplitude
            }
        }
    }

    /// Rotates one vector of the checkpoint's interleaved layout (x0, x1 is the first pair) by
    /// the angles `cos`, `sin` (d/2 each), writing the half-split layout the original produces
    /// after its de-interleave + rotate_half (docs/NUMERICS.md item 1):
    /// out[i] = x[2i]·cos − x[2i+1]·sin, out[i + d/2] = x[2i+1]·cos + x[2i]·sin.
    /// `x` and `out` may be the same memory; `scratch` holds d values.
    @inlinable @inline(__always)
    public static func rotate(_ x: UnsafePointer<Float>, half: Int, cos: UnsafePointer<Float>, sin: UnsafePointer<Float>,
                              into out: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) {
        for i in 0..<2 * half { scratch[i] = x[i] }
        for i in 0..<half {
            let even = scratch[2 * i], odd = scratch[2 * i + 1]
            out[i] = even * cos[i] - odd * sin[i]
            out[i + half] = odd * cos[i] + even * sin[i]
        }
    }

    /// cos/sin for positions start ..< start + count, row-major [count, d/2].
    public func table(start: Int, count: Int) -> RopeTable {
        var cosines = [Float](repeating: 0, count: count * half), sines = cosines
        cosines.withUnsafeMutableBufferPointer { c in
            sines.withUnsafeMutableBufferPointer { s in
                for t in 0..<count {
                    angles(position: start + t, cos: c.baseAddress! + t * half, sin: s.baseAddress! + t * half)
                }
            }
        }
        return RopeTable(half: half, cosines: cosines, sines: sines)
    }
}

/// Precomputed cos/sin rows for the positions of one forward call.
public struct RopeTable {
    public let half: Int
    public let cosines: [Float]
    public let sines: [Float]

    /// Rotates one vector by the angles of row `t` (see `RotaryEmbedding.rotate`).
    public func rotate(_ x: UnsafePointer<Float>, row t: Int, into out: UnsafeMutablePointer<Float>,
                scratch: UnsafeMutablePointer<Float>) {
        cosines.withUnsafeBufferPointer { c in
            sines.withUnsafeBufferPointer { s in
                RotaryEmbedding.rotate(x, half: half, cos: c.baseAddress! + t * half, sin: s.baseAddress! + t * half,
                                       into: out, scratch: scratch)
            }
        }
    }
}
