/// Lane-wise helpers for the attention kernels' softmax (`ExpandedAttentionKernels` for prompts,
/// `LatentAttention` for decode), written with bit operations: the standard library's
/// `replacing(with:where:)` and `pointwiseMax` compile to a loop over the lanes, which cost as
/// much as the attention products in a first profile.
public enum VectorMath {
    /// Lanes of `a` where `mask` is set, else of `b`.
    @inline(__always)
    public static func select(_ mask: SIMDMask<SIMD16<Int32>>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        let m = unsafeBitCast(mask, to: SIMD16<Int32>.self)
        return unsafeBitCast((unsafeBitCast(a, to: SIMD16<Int32>.self) & m) | (unsafeBitCast(b, to: SIMD16<Int32>.self) & ~m),
                             to: SIMD16<Float>.self)
    }

    /// The larger of each pair of lanes (scores hold no NaN).
    @inline(__always)
    public static func maximum(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { select(a .< b, b, a) }

    /// e^x for 16 lanes: x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, so r is exact to
    /// float precision), e^r by the degree-7 polynomial 1 + r + r²·P(r) of Cephes' expf (within
    /// about 1 ulp), 2^n built in the exponent bits. Exactly 1 at 0 (a tile that adds nothing
    /// leaves a running softmax unchanged); 0 below about −87.3, where 2^n would be subnormal
    /// (e^x < 2^-126 is negligible next to a softmax's sum ≥ 1), and at −∞ (masked keys). Each
    /// lane's value depends on that lane only.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let low = SIMD16<Float>(repeating: -104), high = SIMD16<Float>(repeating: 88)
        let clamped = select(x .< low, low, select(high .< x, high, x))
        // Adding 1.5·2²³ rounds x·log₂e to an integer n held in the low mantissa bits.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = clamped * SIMD16(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        var r = clamped
        r.addProduct(n, SIMD16(repeating: -0.693_359_375))
        r.addProduct(n, SIMD16(repeating: 2.121_944_4e-4))
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + SIMD16(repeating: 1.398_199_95e-3)
        p = p * r + SIMD16(repeating: 8.333_451_9e-3)
        p = p * r + SIMD16(repeating: 4.166_579_59e-2)
        p = p * r + SIMD16(repeating: 1.666_666_55e-1)
        p = p * r + SIMD16(repeating: 5.000_000_12e-1)
        let er = p * (r * r) + r + SIMD16(repeating: 1)
        // 2^n: (n + 127) << 23, with n = bits(shifted) − bits(magic) (same binade).
        let biased = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- SIMD16(repeating: 0x4B40_0000 - 127)
        // A biased exponent ≤ 0 (n < −126) gives 0: the sign bit of `biased` clears the lane.
        let twoN = unsafeBitCast((biased &<< 23) & ~(biased &>> 31), to: SIMD16<Float>.self)
        return er * twoN
    }
}
