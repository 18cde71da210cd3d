import Foundation

/// SplitMix64 (Steele, Lea & Flood 2014): a small, fast, seedable generator, deterministic across
/// platforms. Seeds `ReferenceWeights.random`, the sampler's xoshiro state and the tests' random
/// data; its finaliser `mix` also keys the synthetic weights' counter-based streams.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The "golden gamma" (2^64 / φ, odd) added to the state at every step.
    public static let gamma: UInt64 = 0x9E37_79B9_7F4A_7C15

    private var state: UInt64
    public init(seed: UInt64) { state = seed }

    /// The finaliser: a bijection of 64-bit words in which every output bit depends on every
    /// input bit, so consecutive states (or any counter) come out uncorrelated.
    @inline(__always)
    public static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        state &+= Self.gamma
        return Self.mix(state)
    }

    /// Uniform in [−1, 1).
    public mutating func nextSignedUnitFloat() -> Float {
        Float(next() >> 40) * (2 / Float(1 << 24)) - 1
    }
}

extension RandomNumberGenerator {
    /// Uniform in [0, 1) with 53 random bits (the top 53 of `next()`, scaled exactly by 2^-53).
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }
}
