#if arch(x86_64) && !DSV2_PORTABLE
import _Builtin_intrinsics.intel
import CKernelSupport
import DSV2Formats

/// The x86-64 (AVX2) integer row dots: GGML's recipe for Q8_0×Q8_0 and Q4_0×Q8_0, through
/// clang's intrinsics (imported into Swift; the package builds with -march=x86-64-v3).
/// vpmaddubsw multiplies unsigned by signed bytes and adds pairs into 16 bits, vpmaddwd adds
/// pairs into 32 bits: half the instructions of the portable shift-and-mask versions in
/// `RowDot`, which matters because q4 decoding is compute-bound per core.
///
/// Exactness: vpmaddubsw saturates only above 32767; here a pair is at most 2·127·127 = 32258
/// (q8, after moving the sign of w onto a) or 2·15·127 = 3810 (q4), and two q4 pairs 7620.
extension RowDot {
    // MARK: q8 × q8

    /// Eight 32-bit partial sums of one block's Σ w·a, as floats (exact: |Σ| < 2^22).
    /// `absW` = |w| (shared by the tokens of a mat-mat micro-kernel), `wv` the signed quants.
    @inline(__always)
    static func q8BlockAVX2(_ absW: __m256i, _ wv: __m256i, _ a: UnsafeRawPointer, _ ones: __m256i) -> SIMD8<Float> {
        // |w| · (a with the sign of w) = w · a, with an unsigned first operand as vpmaddubsw needs.
        let pairs = _mm256_maddubs_epi16(absW, _mm256_sign_epi8(a.loadUnaligned(as: __m256i.self), wv))
        return _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones))
    }

    /// One token's activation planes and accumulators in the q8 row dots. Blocks alternate
    /// between the two accumulators (block j of a step of eight into acc[j & 1]), in the
    /// single-token kernel and in the micro-kernel alike, so both round identically.
    struct Q8Token {
        let a: UnsafeRawPointer, s: UnsafePointer<Float>
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        init(a: UnsafeRawPointer, s: UnsafePointer<Float>) { self.a = a; self.s = s }
        /// Token k of a micro-kernel's `tokens` (planes [3k] quants, [3k + 1] scales, [3k + 2] unused).
        @inline(__always) init(_ tokens: UnsafePointer<UnsafeRawPointer>, _ k: Int) {
            self.init(a: tokens[3 &* k], s: tokens[3 &* k &+ 1].assumingMemoryBound(to: Float.self))
        }
        var total: Float { (acc0 + acc1).sum() }
    }

    /// Block `b + j` (j < 8) of a step of eight for one token: `weightScales` are the eight
    /// weight scales of the step as floats.
    @inline(__always)
    static func q8Step(_ k: inout Q8Token, _ absW: __m256i, _ wv: __m256i, _ b: Int, _ j: Int,
                       _ weightScales: SIMD8<Float>, _ ones: __m256i) {
        let s = weightScales * UnsafeRawPointer(k.s).loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
        let p = q8BlockAVX2(absW, wv, k.a + (b &+ j) &* 32, ones)
        if j & 1 == 0 { k.acc0.addProduct(p, SIMD8(repeating: s[j])) } else { k.acc1.addProduct(p, SIMD8(repeating: s[j])) }
    }

    /// A tail block (the last blocks % 8 of a row) for one token: always into acc0.
    @inline(__always)
    static func q8TailStep(_ k: inout Q8Token, _ absW: __m256i, _ wv: __m256i, _ ws: UnsafeRawPointer, _ b: Int,
                           _ ones: __m256i) {
        let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * k.s[b]
        k.acc0.addProduct(q8BlockAVX2(absW, wv, k.a + b &* 32, ones), SIMD8(repeating: s))
    }

    /// One q8 row: `w` quants, `ws` f16 scales, `a` natural-order Int8 activations, `aScales`.
    @inline(never)
    static func q8AVX2(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                       _ aScales: UnsafePointer<Float>, blocks: Int) -> Float {
        let ones = _mm256_set1_epi16(1)
        var t = Q8Token(a: a, s: aScales)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 32
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(wb + (prefetchDistance &+ 128))
            dsv2_prefetch(wb + (prefetchDistance &+ 192))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            // Written out (not a loop): with constant j, s[j] is a register broadcast and the
            // accumulator choice static (a loop was kept rolled and went through the stack).
            @inline(__always) func block(_ j: Int) {
                let wv = (wb + j &* 32).loadUnaligned(as: __m256i.self)
                q8Step(&t, _mm256_sign_epi8(wv, wv), wv, b, j, weightScales, ones)
            }
            block(0); block(1); block(2); block(3); block(4); block(5); block(6); block(7)
            b &+= 8
        }
        while b < blocks {
            let wv = (w + b &* 32).loadUnaligned(as: __m256i.self)
            q8TailStep(&t, _mm256_sign_epi8(wv, wv), wv, ws, b, ones)
            b &+= 1
        }
        return t.total
    }

    /// One q8 row against four tokens (mat-mat; result lanes 0–3, lanes 4–7 zero): each weight
    /// vector and its |w| are loaded and computed once for all four. Each token goes through
    /// exactly the operations of `q8AVX2` in the same order (`q8Step`, `q8TailStep`), so the
    /// results are bit-identical to four mat-vecs. No prefetch: the weights of a mat-mat tile
    /// are in L1 after the first group.
    @inline(never)
    static func q8AVX2x4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                         _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        let ones = _mm256_set1_epi16(1)
        var t0 = Q8Token(tokens, 0), t1 = Q8Token(tokens, 1), t2 = Q8Token(tokens, 2), t3 = Q8Token(tokens, 3)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 32
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            @inline(__always) func block(_ j: Int) {
                let wv = (wb + j &* 32).loadUnaligned(as: __m256i.self)
                let absW = _mm256_sign_epi8(wv, wv)
                q8Step(&t0, absW, wv, b, j, weightScales, ones)
                q8Step(&t1, absW, wv, b, j, weightScales, ones)
                q8Step(&t2, absW, wv, b, j, weightScales, ones)
                q8Step(&t3, absW, wv, b, j, weightScales, ones)
            }
            block(0); block(1); block(2); block(3); block(4); block(5); block(6); block(7)
            b &+= 8
        }
        while b < blocks {
            let wv = (w + b &* 32).loadUnaligned(as: __m256i.self)
            let absW = _mm256_sign_epi8(wv, wv)
            q8TailStep(&t0, absW, wv, ws, b, ones); q8TailStep(&t1, absW, wv, ws, b, ones)
            q8TailStep(&t2, absW, wv, ws, b, ones); q8TailStep(&t3, absW, wv, ws, b, ones)
            b &+= 1
        }
        return SIMD8(t0.total, t1.total, t2.total, t3.total, 0, 0, 0, 0)
    }

    // MARK: q4 × q8

    /// Two q4 blocks A, B (32 bytes: A's 16 then B's 16) against their pair-order Int8
    /// activations (`a`: 32 bytes for the low nibbles, 32 for the high) and corrections `c`:
    /// 32-bit lanes 0–3 hold block A's partial sums of (u − 8)·a, lanes 4–7 block B's.
    @inline(__always)
    static func q4PairAVX2(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, _ c: UnsafeRawPointer,
                           _ mask: __m256i, _ ones: __m256i) -> SIMD8<Float> {
        let v = w.loadUnaligned(as: __m256i.self)
        let low = _mm256_and_si256(v, mask)                              // values 0…15 of A, B
        let high = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)       // values 16…31
        return q4PairUnpacked(low, high, a, c, ones)
    }

    /// The activation side of `q4PairAVX2`, given the unpacked nibbles (shared by the tokens
    /// of a mat-mat micro-kernel).
    @inline(__always)
    static func q4PairUnpacked(_ low: __m256i, _ high: __m256i, _ a: UnsafeRawPointer, _ c: UnsafeRawPointer,
                               _ ones: __m256i) -> SIMD8<Float> {
        let pairs = _mm256_add_epi16(_mm256_maddubs_epi16(low, a.loadUnaligned(as: __m256i.self)),
                                     _mm256_maddubs_epi16(high, a.loadUnaligned(fromByteOffset: 32, as: __m256i.self)))
        let sums = _mm256_add_epi32(_mm256_madd_epi16(pairs, ones), c.loadUnaligned(as: __m256i.self))
        return _mm256_cvtepi32_ps(sums)
    }

    /// One q4 row (see `RowDot.q4` for the arguments; `a` is the Int8 pair-order plane).
    @inline(never)
    static func q4AVX2(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                       _ aScales: UnsafePointer<Float>, _ c: UnsafeRawPointer, blocks: Int) -> Float {
        let mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let sa = UnsafeRawPointer(aScales)
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 16, ab = a + b &* 32, cb = c + b &* 16
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let s = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
                * sa.loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
            acc0.addProduct(q4PairAVX2(wb, ab, cb, mask, ones),
                            SIMD8(s[0], s[0], s[0], s[0], s[1], s[1], s[1], s[1]))
            acc1.addProduct(q4PairAVX2(wb + 32, ab + 64, cb + 32, mask, ones),
                            SIMD8(s[2], s[2], s[2], s[2], s[3], s[3], s[3], s[3]))
            acc0.addProduct(q4PairAVX2(wb + 64, ab + 128, cb + 64, mask, ones),
                            SIMD8(s[4], s[4], s[4], s[4], s[5], s[5], s[5], s[5]))
            acc1.addProduct(q4PairAVX2(wb + 96, ab + 192, cb + 96, mask, ones),
                            SIMD8(s[6], s[6], s[6], s[6], s[7], s[7], s[7], s[7]))
            b &+= 8
        }
        while b &+ 2 <= blocks {
            let s0 = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * aScales[b]
            let s1 = Float(ws.loadUnaligned(fromByteOffset: b &* 2 &+ 2, as: Float16.self)) * aScales[b &+ 1]
            acc0.addProduct(q4PairAVX2(w + b &* 16, a + b &* 32, c + b &* 16, mask, ones),
                            SIMD8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1)))
            b &+= 2
        }
        var total = (acc0 + acc1).sum()
        if b < blocks { total += q4LastBlock(w, ws, a, aScales, c, block: b) }
        return total
    }

    /// The odd last block of a q4 row: block A of a pair whose B is zero, on 128-bit vectors.
    @inline(__always)
    static func q4LastBlock(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                            _ aScales: UnsafePointer<Float>, _ c: UnsafeRawPointer, block b: Int) -> Float {
        let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * aScales[b]
        let v = (w + b &* 16).loadUnaligned(as: __m128i.self)
        let mask128 = _mm_set1_epi8(0x0F)
        let ab = a + b &* 32
        let pairs = _mm_add_epi16(
            _mm_maddubs_epi16(_mm_and_si128(v, mask128), ab.loadUnaligned(as: __m128i.self)),
            _mm_maddubs_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), mask128),
                              ab.loadUnaligned(fromByteOffset: 32, as: __m128i.self)))
        let sums = _mm_add_epi32(_mm_madd_epi16(pairs, _mm_set1_epi16(1)),
                                 (c + b &* 16).loadUnaligned(as: __m128i.self))
        return (_mm_cvtepi32_ps(sums) * s).sum()
    }

    // MARK: q4 mat-mat micro-kernel

    /// One token's activation planes and accumulators in `q4AVX2x4`.
    struct Q4Token {
        let a: UnsafeRawPointer, s: UnsafePointer<Float>, c: UnsafeRawPointer
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        init(a: UnsafeRawPointer, s: UnsafePointer<Float>, c: UnsafeRawPointer) {
            self.a = a; self.s = s; self.c = c
        }
        /// Token k of a micro-kernel's `tokens` (planes [3k] quants, [3k + 1] scales, [3k + 2] corrections).
        @inline(__always) init(_ tokens: UnsafePointer<UnsafeRawPointer>, _ k: Int) {
            self.init(a: tokens[3 &* k], s: tokens[3 &* k &+ 1].assumingMemoryBound(to: Float.self), c: tokens[3 &* k &+ 2])
        }
    }

    /// One q4 row against four tokens (result lanes 0–3, lanes 4–7 zero): the nibbles are
    /// unpacked once for all four. Each token goes through exactly the operations of `q4AVX2`
    /// in the same order, so the results are bit-identical to four mat-vecs.
    @inline(never)
    static func q4AVX2x4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer,
                         _ tokens: UnsafePointer<UnsafeRawPointer>, blocks: Int) -> SIMD8<Float> {
        let mask = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1)
        var t0 = Q4Token(tokens, 0), t1 = Q4Token(tokens, 1), t2 = Q4Token(tokens, 2), t3 = Q4Token(tokens, 3)
        @inline(__always)
        func step(_ k: inout Q4Token, _ low: __m256i, _ high: __m256i, _ b: Int, _ pair: Int,
                  _ weightScales: SIMD8<Float>) {
            let s = weightScales * UnsafeRawPointer(k.s).loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
            let i = 2 &* pair
            let sv = SIMD8(s[i], s[i], s[i], s[i], s[i &+ 1], s[i &+ 1], s[i &+ 1], s[i &+ 1])
            let p = q4PairUnpacked(low, high, k.a + (b &* 32 &+ pair &* 64), k.c + (b &* 16 &+ pair &* 32), ones)
            if pair & 1 == 0 { k.acc0.addProduct(p, sv) } else { k.acc1.addProduct(p, sv) }
        }
        var b = 0
        while b &+ 8 <= blocks {
            let wb = w + b &* 16
            let weightScales = _mm256_cvtph_ps(ws.loadUnaligned(fromByteOffset: b &* 2, as: __m128i.self))
            @inline(__always) func pairStep(_ pair: Int) {
                let v = (wb + pair &* 32).loadUnaligned(as: __m256i.self)
                let low = _mm256_and_si256(v, mask), high = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
                step(&t0, low, high, b, pair, weightScales)
                step(&t1, low, high, b, pair, weightScales)
                step(&t2, low, high, b, pair, weightScales)
                step(&t3, low, high, b, pair, weightScales)
            }
            pairStep(0); pairStep(1); pairStep(2); pairStep(3)
            b &+= 8
        }
        @inline(__always)
        func tail(_ k: inout Q4Token, _ low: __m256i, _ high: __m256i, _ b: Int) {
            let s0 = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * k.s[b]
            let s1 = Float(ws.loadUnaligned(fromByteOffset: b &* 2 &+ 2, as: Float16.self)) * k.s[b &+ 1]
            k.acc0.addProduct(q4PairUnpacked(low, high, k.a + b &* 32, k.c + b &* 16, ones),
                              SIMD8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1)))
        }
        while b &+ 2 <= blocks {
            let v = (w + b &* 16).loadUnaligned(as: __m256i.self)
            let low = _mm256_and_si256(v, mask), high = _mm256_and_si256(_mm256_srli_epi16(v, 4), mask)
            tail(&t0, low, high, b); tail(&t1, low, high, b); tail(&t2, low, high, b); tail(&t3, low, high, b)
            b &+= 2
        }
        var totals = SIMD8<Float>((t0.acc0 + t0.acc1).sum(), (t1.acc0 + t1.acc1).sum(),
                                  (t2.acc0 + t2.acc1).sum(), (t3.acc0 + t3.acc1).sum(), 0, 0, 0, 0)
        if b < blocks {
            totals[0] += q4LastBlock(w, ws, t0.a, t0.s, t0.c, block: b)
            totals[1] += q4LastBlock(w, ws, t1.a, t1.s, t1.c, block: b)
            totals[2] += q4LastBlock(w, ws, t2.a, t2.s, t2.c, block: b)
            totals[3] += q4LastBlock(w, ws, t3.a, t3.s, t3.c, block: b)
        }
        return totals
    }
}
#endif
