#if arch(x86_64) && !DSV2_PORTABLE
import _Builtin_intrinsics.intel
import CKernelSupport

/// The q8 and q4 row dots of `RowDotAVX2` (module DSV2Kernels) with `vpdpbusd` (u8 × s8, four
/// products summed into each 32-bit lane, plus the lane's accumulator), which replaces
/// vpmaddubsw + vpmaddwd (+ vpaddw + vpaddd for q4). For q8 the activations come offset to
/// unsigned bytes (a + 128) and the weights stay signed: Σ (a + 128)·w − 128·Σ w = Σ a·w, where
/// −128·Σ w per lane is computed once per weight vector (shared by the tokens of a mat-mat
/// micro-kernel) and is the accumulator the products are added to. Per token and block that is
/// one vpdpbusd, against vpsignb + vpdpbusd with |w| · sign(a, w), and q8 mat-mat is bound by
/// those per-token operations.
///
/// **One source, two modules.** This file is compiled twice (Quantized/KernelsAVX512 links
/// to it): in DSV2KernelsVNNI with `-mavxvnni` (the VEX encoding, AVX-VNNI) and in
/// DSV2KernelsAVX512 with `-mavx512vnni -mavx512vl` and `DSV2_AVX512` defined (the EVEX
/// encoding of the same instruction). Swift takes its LLVM target features from the clang
/// importer options, so only these modules may contain VNNI (or AVX-512) instructions; the
/// kernel table calls in only after a run-time CPU check, and the entry points are
/// `@inline(never)` so that none of it is inlined into a module built without the features.
///
/// **Bit-identical to the AVX2 kernels.** The integer lane sums are the same exact values
/// (see below), and the float part — int32→float conversion, scale products, the split over
/// two accumulators, the step order, the tails and the final reduction — is written as the
/// same operations in the same order as `RowDotAVX2`. Any change there must be made in both
/// files (KernelMatVecTests compares the paths bit for bit).
///
/// **Exactness (no saturation).** `vpdpbusd` (not the saturating `vpdpbusds`) adds four
/// 8-bit products to a 32-bit lane with wrap-around, but nothing here comes near 2^31:
/// q8: a + 128 ≤ 255 (activations are clamped to ±127) and |w| ≤ 127, so four products
/// ≤ 129540 per lane and the correction 128 · 4 · 127 = 65024; q4: nibbles u ≤ 15, |a| ≤ 127,
/// eight products per lane (low and high nibbles) ≤ 15240, plus the correction
/// |−8 · Σ a| ≤ 8 · 32 · 127 = 32512. Unlike vpmaddubsw there is no 16-bit intermediate at all.
public enum RowDotVNNI {
    /// Bytes ahead of the weight pointer to prefetch (= RowDot.prefetchDistance).
    static let prefetchDistance = 4096

    /// A token and its two accumulators (block j of a step into acc[j & 1], tails into acc0).
    /// Its activation planes (as in `PreparedActivations`): `a` the quants — for q8 natural order
    /// offset to UInt8 a + 128, for q4 Int8 in pair order —, `s` the per-block scales, `c` the
    /// q4 corrections (unused for q8).
    struct Lane {
        let a: UnsafeRawPointer, s: UnsafePointer<Float>, c: UnsafeRawPointer
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        @inline(__always) init(_ a: UnsafeRawPointer, _ s: UnsafePointer<Float>, _ c: UnsafeRawPointer) {
            self.a = a; self.s = s; self.c = c
        }
        /// Token k of a micro-kernel's `tokens`: planes [3k] quants, [3k + 1] scales, [3k + 2] corrections.
        @inline(__always) init(_ tokens: UnsafePointer<UnsafeRawPointer>, _ k: Int) {
            self.init(tokens[3 &* k], tokens[3 &* k &+ 1].assumingMemoryBound(to: Float.self), tokens[3 &* k &+ 2])
        }
        @inline(__always) var total: Float { (acc0 + acc1).sum() }
    }

    /// The lanes of a mat-mat micro-kernel (local variables of the entry point, so that their
    /// accumulators live in registers): `each(body)` runs `body` on every lane with its index,
    /// in token order.
    private typealias EachLane = ((inout Lane, Int) -> Void) -> Void

    /// acc + Σ of four u8 × s8 products per 32-bit lane: VEX (AVX-VNNI) or EVEX (AVX-512 VNNI;
    /// clang's unmasked form is a macro Swift cannot import, and the all-ones mask folds away).
    @inline(__always)
    static func dpbusd(_ acc: __m256i, _ u: __m256i, _ s: __m256i) -> __m256i {
        #if DSV2_AVX512
        _mm256_mask_dpbusd_epi32(acc, 0xFF, u, s)
        #else
        _mm256_dpbusd_avx_epi32(acc, u, s)
        #endif
    }

    @inline(__always)
    static func dpbusd(_ acc: __m128i, _ u: __m128i, _ s: __m128i) -> __m128i {
        #if DSV2_AVX512
        _mm_mask_dpbusd_epi32(acc, 0xFF, u, s)
        #else
        _mm_dpbusd_avx_epi32(acc, u, s)
        #endif
    }

    // MARK: q8 × q8

    /// −128 · Σ w over each group of four bytes (32-bit lane) of one block of weights `wv`.
    @inline(__always)
    static func q8Correction(_ wv: __m256i) -> __m256i {
        let zero = _mm256_setzero_si256()
        return _mm256_sub_epi32(zero, dpbusd(zero, _mm256_set1_epi8(-128), wv))
    }

    /// Eight 32-bit partial sums of one block's Σ w·a as floats: the correction plus
    /// Σ (a + 128)·w, lane by lane the same integers as the AVX2 kernel's.
    @inline(__always)
    static func q8Block(_ correction: __m256i, _ wv: __m256i, _ a: UnsafeRawPointer) -> SIMD8<Float> {
        _mm256_cvtepi32_ps(dpbusd(correction, a.loadUnaligned(as: __m256i.self), wv))
    }

    @inline(__always)
    static func q8Step(_ k: inout Lane, _ correction: __m256i, _ wv: __m256i, _ b: Int, _ j: Int,
                       _ weightScales: SIMD8<Float>) {
        let s = weightScales * UnsafeRawPointer(k.s).loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
        let p = q8Block(correction, wv, k.a + (b &+ j) &* 32)
        if j & 1 == 0 { k.acc0.addProduct(p, SIMD8(repeating: s[j])) } else { k.acc1.addProduct(p, SIMD8(repeating: s[j])) }
    }

    @inline(__always)
    static func q8TailStep(_ k: inout Lane, _ correction: __m256i, _ wv: __m256i, _ ws: UnsafeRawPointer, _ b: Int) {
        let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * k.s[b]
        k.acc0.addProduct(q8Block(correction, wv, k.a + b &* 32), SIMD8(repeating: s))
    }

    /// One q8 row (mat-vec): `w` quants (blocks × 32 bytes), `ws` its f16 scales.
    @inline(never)
    public static func q8(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                          _ s: UnsafePointer<Float>, _ c: UnsafeRawPointer, blocks: Int) -> Float {
        var t = Lane(a, s, c)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 32
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(wb + (prefetchDistance &+ 128))
            dsv2_prefetch(wb + (prefetchDistance &+ 192))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            // Written out (not a loop): constant j makes s[j] a register broadcast.
            @inline(__always) func block(_ j: Int) {
                let wv = (wb + j &* 32).loadUnaligned(as: __m256i.self)
                q8Step(&t, q8Correction(wv), wv, b, j, weightScales)
            }
            block(0); block(1); block(2); block(3); block(4); block(5); block(6); block(7)
            b &+= 8
        }
        while b < blocks {
            let wv = (w + b &* 32).loadUnaligned(as: __m256i.self)
            q8TailStep(&t, q8Correction(wv), wv, ws, b)
            b &+= 1
        }
        return t.total
    }

    /// One q8 row against the lanes of `each` (mat-mat): each weight vector is loaded and its
    /// correction computed once for all of them; each token goes through exactly the operations
    /// of `q8`. Lane k of the result is token k's (zero beyond the group).
    @inline(__always)
    private static func q8Group(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, blocks: Int, _ each: EachLane) -> SIMD8<Float> {
        var b = 0
        #if DSV2_AVX512
        // Eight tokens: the step's scale products (q8Step's `s`) go to memory, where the FMAs
        // broadcast them from, and a loop takes two blocks at a time (acc0, acc1). Written out
        // like the form below, the eight scale vectors stayed in registers and LLVM spilled the
        // block sums instead: this form is ~20% faster on q8 mat-mat (Zen 4). Per token the same
        // operations on the same values, in the same order per accumulator.
        withUnsafeTemporaryAllocation(of: SIMD8<Float>.self, capacity: 8) { buffer in
            let sc = UnsafeMutableRawPointer(buffer.baseAddress!)
            while b &+ 8 <= blocks {
                let wb = w + b &* 32
                let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
                each { k, i in
                    sc.storeBytes(of: weightScales * UnsafeRawPointer(k.s).loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self),
                                  toByteOffset: i &* 32, as: SIMD8<Float>.self)
                }
                var j = 0
                while j < 8 {
                    let wv0 = (wb + j &* 32).loadUnaligned(as: __m256i.self), c0 = q8Correction(wv0)
                    let wv1 = (wb + (j &* 32 &+ 32)).loadUnaligned(as: __m256i.self), c1 = q8Correction(wv1)
                    each { k, i in
                        let s0 = sc.load(fromByteOffset: i &* 32 &+ j &* 4, as: Float.self)
                        k.acc0.addProduct(q8Block(c0, wv0, k.a + (b &+ j) &* 32), SIMD8(repeating: s0))
                        let s1 = sc.load(fromByteOffset: i &* 32 &+ j &* 4 &+ 4, as: Float.self)
                        k.acc1.addProduct(q8Block(c1, wv1, k.a + (b &+ j &+ 1) &* 32), SIMD8(repeating: s1))
                    }
                    j &+= 2
                }
                b &+= 8
            }
        }
        #else
        while b &+ 8 <= blocks {
            let wb = w + b &* 32
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            @inline(__always) func block(_ j: Int) {
                let wv = (wb + j &* 32).loadUnaligned(as: __m256i.self)
                let correction = q8Correction(wv)
                each { k, _ in q8Step(&k, correction, wv, b, j, weightScales) }
            }
            block(0); block(1); block(2); block(3); block(4); block(5); block(6); block(7)
            b &+= 8
        }
        #endif
        while b < blocks {
            let wv = (w + b &* 32).loadUnaligned(as: __m256i.self)
            let correction = q8Correction(wv)
            each { k, _ in q8TailStep(&k, correction, wv, ws, b) }
            b &+= 1
        }
        var totals = SIMD8<Float>()
        each { k, i in totals[i] = k.total }
        return totals
    }

    /// One q8 row against four tokens (`tokens` as in `Lane`); lanes 4–7 of the result are zero.
    @inline(never)
    public static func q8x4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                            _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        var l0 = Lane(tokens, 0), l1 = Lane(tokens, 1), l2 = Lane(tokens, 2), l3 = Lane(tokens, 3)
        return q8Group(w, ws, blocks: blocks) { body in body(&l0, 0); body(&l1, 1); body(&l2, 2); body(&l3, 3) }
    }

    /// One q8 row against six tokens (12 accumulators, the most 16 ymm registers allow; +5–15%
    /// over four tokens on q8 mat-mat and V2-Lite prefill); lanes 6–7 of the result are zero.
    @inline(never)
    public static func q8x6(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                            _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        var l0 = Lane(tokens, 0), l1 = Lane(tokens, 1), l2 = Lane(tokens, 2), l3 = Lane(tokens, 3)
        var l4 = Lane(tokens, 4), l5 = Lane(tokens, 5)
        return q8Group(w, ws, blocks: blocks) { body in
            body(&l0, 0); body(&l1, 1); body(&l2, 2); body(&l3, 3); body(&l4, 4); body(&l5, 5)
        }
    }

    // MARK: q4 × q8

    /// Two q4 blocks' unpacked nibbles (`low`, `high`: unsigned bytes) against their pair-order
    /// activations and corrections: lanes 0–3 block A's Σ (u − 8)·a partial sums, 4–7 block B's.
    /// The correction is the starting accumulator, then low and high nibbles are added.
    @inline(__always)
    static func q4PairUnpacked(_ low: __m256i, _ high: __m256i, _ a: UnsafeRawPointer,
                               _ c: UnsafeRawPointer) -> SIMD8<Float> {
        let withLow = dpbusd(c.loadUnaligned(as: __m256i.self), low, a.loadUnaligned(as: __m256i.self))
        let sums = dpbusd(withLow, high, a.loadUnaligned(fromByteOffset: 32, as: __m256i.self))
        return _mm256_cvtepi32_ps(sums)
    }

    /// Pair `pair` (< 4) of a step of eight blocks starting at block `b`, for one token.
    @inline(__always)
    static func q4Step(_ k: inout Lane, _ low: __m256i, _ high: __m256i, _ b: Int, _ pair: Int,
                       _ weightScales: SIMD8<Float>) {
        let s = weightScales * UnsafeRawPointer(k.s).loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
        let i = 2 &* pair
        let sv = SIMD8(s[i], s[i], s[i], s[i], s[i &+ 1], s[i &+ 1], s[i &+ 1], s[i &+ 1])
        let p = q4PairUnpacked(low, high, k.a + (b &* 32 &+ pair &* 64), k.c + (b &* 16 &+ pair &* 32))
        if pair & 1 == 0 { k.acc0.addProduct(p, sv) } else { k.acc1.addProduct(p, sv) }
    }

    /// A tail pair (blocks b, b + 1 after the steps of eight), always into acc0.
    @inline(__always)
    static func q4TailStep(_ k: inout Lane, _ low: __m256i, _ high: __m256i, _ ws: UnsafeRawPointer, _ b: Int) {
        let s0 = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * k.s[b]
        let s1 = Float(ws.loadUnaligned(fromByteOffset: b &* 2 &+ 2, as: Float16.self)) * k.s[b &+ 1]
        k.acc0.addProduct(q4PairUnpacked(low, high, k.a + b &* 32, k.c + b &* 16),
                          SIMD8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1)))
    }

    /// The odd last block of a q4 row: block A of a pair whose B is zero, on 128-bit vectors.
    @inline(__always)
    static func q4LastBlock(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ k: Lane, block b: Int) -> Float {
        let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * k.s[b]
        let v = (w + b &* 16).loadUnaligned(as: __m128i.self)
        let mask128 = _mm_set1_epi8(0x0F)
        let ab = k.a + b &* 32
        let withLow = dpbusd((k.c + b &* 16).loadUnaligned(as: __m128i.self),
                                           _mm_and_si128(v, mask128), ab.loadUnaligned(as: __m128i.self))
        let sums = dpbusd(withLow, _mm_and_si128(_mm_srli_epi16(v, 4), mask128),
                                        ab.loadUnaligned(fromByteOffset: 32, as: __m128i.self))
        return (_mm_cvtepi32_ps(sums) * s).sum()
    }

    /// Low and high nibbles of 32 bytes (two blocks) as unsigned bytes 0…15.
    @inline(__always)
    static func unpack(_ p: UnsafeRawPointer, _ mask: __m256i) -> (__m256i, __m256i) {
        let v = p.loadUnaligned(as: __m256i.self)
        return (_mm256_and_si256(v, mask), _mm256_and_si256(_mm256_srli_epi16(v, 4), mask))
    }

    /// One q4 row (mat-vec): `w` nibbles (blocks × 16 bytes), `ws` f16 scales; the token's
    /// `a` is the pair-order Int8 plane.
    @inline(never)
    public static func q4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                          _ s: UnsafePointer<Float>, _ c: UnsafeRawPointer, blocks: Int) -> Float {
        let mask = _mm256_set1_epi8(0x0F)
        var t = Lane(a, s, c)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 16
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            @inline(__always) func pairStep(_ pair: Int) {
                let (low, high) = unpack(wb + pair &* 32, mask)
                q4Step(&t, low, high, b, pair, weightScales)
            }
            pairStep(0); pairStep(1); pairStep(2); pairStep(3)
            b &+= 8
        }
        while b &+ 2 <= blocks {
            let (low, high) = unpack(w + b &* 16, mask)
            q4TailStep(&t, low, high, ws, b)
            b &+= 2
        }
        var total = t.total
        if b < blocks { total += q4LastBlock(w, ws, t, block: b) }
        return total
    }

    /// One q4 row against the lanes of `each` (mat-mat): the nibbles are unpacked once for all
    /// of them; each token goes through exactly the operations of `q4`. Lane k of the result is
    /// token k's (zero beyond the group).
    @inline(__always)
    private static func q4Group(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, blocks: Int, _ each: EachLane) -> SIMD8<Float> {
        let mask = _mm256_set1_epi8(0x0F)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 16
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            @inline(__always) func pairStep(_ pair: Int) {
                let (low, high) = unpack(wb + pair &* 32, mask)
                each { k, _ in q4Step(&k, low, high, b, pair, weightScales) }
            }
            pairStep(0); pairStep(1); pairStep(2); pairStep(3)
            b &+= 8
        }
        while b &+ 2 <= blocks {
            let (low, high) = unpack(w + b &* 16, mask)
            each { k, _ in q4TailStep(&k, low, high, ws, b) }
            b &+= 2
        }
        var totals = SIMD8<Float>()
        each { k, i in totals[i] = k.total }
        if b < blocks { each { k, i in totals[i] += q4LastBlock(w, ws, k, block: b) } }
        return totals
    }

    /// One q4 row against four tokens (`tokens` as in `Lane`); lanes 4–7 of the result are zero.
    @inline(never)
    public static func q4x4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                            _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        var l0 = Lane(tokens, 0), l1 = Lane(tokens, 1), l2 = Lane(tokens, 2), l3 = Lane(tokens, 3)
        return q4Group(w, ws, blocks: blocks) { body in body(&l0, 0); body(&l1, 1); body(&l2, 2); body(&l3, 3) }
    }

    #if DSV2_AVX512
    // Eight tokens per pass (this module only: two accumulators and a scale vector per token are
    // 24 of AVX-512's 32 vector registers, beside the weights and their correction or nibbles).

    /// One q8 row against eight tokens (`tokens` as in `Lane`).
    @inline(never)
    public static func q8x8(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                            _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        var l0 = Lane(tokens, 0), l1 = Lane(tokens, 1), l2 = Lane(tokens, 2), l3 = Lane(tokens, 3)
        var l4 = Lane(tokens, 4), l5 = Lane(tokens, 5), l6 = Lane(tokens, 6), l7 = Lane(tokens, 7)
        return q8Group(w, ws, blocks: blocks) { body in
            body(&l0, 0); body(&l1, 1); body(&l2, 2); body(&l3, 3); body(&l4, 4); body(&l5, 5); body(&l6, 6); body(&l7, 7)
        }
    }

    /// One q4 row against eight tokens (`tokens` as in `Lane`).
    @inline(never)
    public static func q4x8(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                            _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        var l0 = Lane(tokens, 0), l1 = Lane(tokens, 1), l2 = Lane(tokens, 2), l3 = Lane(tokens, 3)
        var l4 = Lane(tokens, 4), l5 = Lane(tokens, 5), l6 = Lane(tokens, 6), l7 = Lane(tokens, 7)
        return q4Group(w, ws, blocks: blocks) { body in
            body(&l0, 0); body(&l1, 1); body(&l2, 2); body(&l3, 3); body(&l4, 4); body(&l5, 5); body(&l6, 6); body(&l7, 7)
        }
    }
    #endif
}
#endif
