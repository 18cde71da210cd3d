/// The SIMD quantizer of the converter and of in-memory quantization: float rows → q8/q4
/// planes, bit-identical to the normative `ScalarQuantization` (tested on random rows, ties,
/// zeros, subnormals and huge values in `FastQuantizationTests`), several times faster.
///
/// Written in the patterns of docs/KERNELS.md: `SIMD8<Float>` arithmetic with fused multiply-adds,
/// bit reinterpretation instead of the standard library's element conversions, rounding with the
/// 2²³ trick. One block of 32 values is four vectors; lane l of the sums holds values l, l+8, l+16,
/// l+24, the order `ScalarQuantization.q4Sums` defines.
enum FastQuantization {
    typealias Vector = SIMD8<Float>
    typealias Bits = SIMD8<UInt32>

    /// A block whose values are not all finite: the index (0…31) of the first such value.
    struct NonFiniteValue: Error { let index: Int }
    /// A block whose largest magnitude overflows every f16 scale (q8: > 65504·127, q4: > 65504·9.5).
    struct ScaleOverflow: Error {}

    /// Quantizes `rows` rows of `columns` floats into `type` (q8 or q4): quants of block
    /// (r, b) at `quants + (r·B + b)·quantBytesPerBlock`, its scale at `scales[r·B + b]`.
    /// Throws the (row, column) of the first non-finite value.
    static func quantizeRows(_ source: UnsafePointer<Float>, rows: Int, columns: Int, as type: WeightType,
                             quants: UnsafeMutablePointer<UInt8>, scales: UnsafeMutablePointer<Float16>) throws {
        let blocks = WeightType.blocksPerRow(columns)
        let padded = UnsafeMutablePointer<Float>.allocate(capacity: 32)
        defer { padded.deallocate() }
        for r in 0..<rows {
            let row = source + r * columns
            for b in 0..<blocks {
                let start = b * 32
                var x = UnsafePointer(row + start)
                if start + 32 > columns {
                    // The padded last block: the missing values are zeros (FORMAT.md "Blocks").
                    padded.initialize(repeating: 0, count: 32)
                    padded.update(from: row + start, count: columns - start)
                    x = UnsafePointer(padded)
                }
                let index = r * blocks + b
                do {
                    if type == .q4 {
                        scales[index] = try quantizeQ4Block(x, into: quants + index * 16)
                    } else {
                        scales[index] = try quantizeQ8Block(x, into: quants + index * 32)
                    }
                } catch let error as NonFiniteValue {
                    throw TensorConversionError.nonFinite(tensor: "", row: r, column: start + error.index)
                } catch {
                    throw TensorConversionError.scaleOverflow(tensor: "", type: type, row: r, column: start)
                }
            }
        }
    }

    /// The first index whose magnitude has bits `amaxBits`.
    @inline(__always)
    static func firstIndex(ofMagnitude amaxBits: UInt32, in x: UnsafePointer<Float>) -> Int {
        var j = 0
        while j < 31, x[j].bitPattern & 0x7FFF_FFFF != amaxBits { j += 1 }
        return j
    }
}

#if arch(x86_64) && !DSV2_PORTABLE
import _Builtin_intrinsics.intel

extension FastQuantization {
    @inline(__always)
    static func load(_ x: UnsafePointer<Float>, _ i: Int) -> Vector {
        UnsafeRawPointer(x + 8 * i).loadUnaligned(as: Vector.self)
    }

    @inline(__always)
    static func maxBits(_ a: Bits, _ b: Bits) -> Bits {
        unsafeBitCast(_mm256_max_epu32(unsafeBitCast(a, to: __m256i.self), unsafeBitCast(b, to: __m256i.self)), to: Bits.self)
    }

    /// max|x| of a block as bits (integer max of the magnitudes' bit patterns orders finite
    /// floats like their values, and puts inf/NaN above every finite value).
    @inline(__always)
    static func maxMagnitudeBits(_ v0: Vector, _ v1: Vector, _ v2: Vector, _ v3: Vector) -> UInt32 {
        let mask = Bits(repeating: 0x7FFF_FFFF)
        let m01 = maxBits(unsafeBitCast(v0, to: Bits.self) & mask, unsafeBitCast(v1, to: Bits.self) & mask)
        let m23 = maxBits(unsafeBitCast(v2, to: Bits.self) & mask, unsafeBitCast(v3, to: Bits.self) & mask)
        let m = maxBits(m01, m23)
        var result: UInt32 = 0
        for l in 0..<8 { result = max(result, m[l]) }
        return result
    }

    /// clamp(round(clamp(y, low − 1, high + 1)), low, high) as Int32 lanes, rounding ties away
    /// from zero, with exact steps: the magnitude is truncated (cvttps2dq), incremented when
    /// the remaining fraction is ≥ ½ (compared as bit patterns: both are non-negative floats),
    /// and given y's sign back (vpsignd; y = ±0 gives 0).
    @inline(__always)
    static func roundedCodes(_ y: Vector, low: Int32, high: Int32, bounded: Bool = false) -> __m256i {
        // `bounded`: the caller knows |y| < 2³¹ (cvttps2dq's range), so the first clamp, which
        // only guards that range, is skipped; the result is the same.
        let clamped = bounded ? y
            : _mm256_min_ps(_mm256_max_ps(y, Vector(repeating: Float(low - 1))), Vector(repeating: Float(high + 1)))
        let magnitude = _mm256_and_ps(clamped, unsafeBitCast(Bits(repeating: 0x7FFF_FFFF), to: Vector.self))
        let whole = _mm256_cvttps_epi32(magnitude)
        let fraction = _mm256_sub_ps(magnitude, _mm256_cvtepi32_ps(whole))
        let roundsUp = _mm256_cmpgt_epi32(_mm256_castps_si256(fraction), _mm256_set1_epi32(0x3EFF_FFFF)) // ≥ 0.5
        let signed = _mm256_sign_epi32(_mm256_sub_epi32(whole, roundsUp), _mm256_castps_si256(clamped))
        return _mm256_min_epi32(_mm256_max_epi32(signed, _mm256_set1_epi32(low)), _mm256_set1_epi32(high))
    }

    /// Byte 0 of each 32-bit lane of `codes` (values 0…255), the 8 bytes in lane order, at `q`.
    @inline(__always)
    static func storeLowBytes(_ codes: __m256i, _ q: UnsafeMutablePointer<UInt8>) {
        // Gather bytes 0, 4, 8, 12 of each 128-bit half into its first 4 bytes.
        let gather = _mm256_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
                                      0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1)
        let words = unsafeBitCast(_mm256_shuffle_epi8(codes, gather), to: SIMD8<UInt32>.self)
        UnsafeMutableRawPointer(q).storeBytes(of: words[0], as: UInt32.self)
        UnsafeMutableRawPointer(q + 4).storeBytes(of: words[4], as: UInt32.self)
    }

    // MARK: q8

    static func quantizeQ8Block(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<UInt8>) throws -> Float16 {
        let v0 = load(x, 0), v1 = load(x, 1), v2 = load(x, 2), v3 = load(x, 3)
        let amaxBits = maxMagnitudeBits(v0, v1, v2, v3)
        if amaxBits >= 0x7F80_0000 { throw NonFiniteValue(index: firstIndex(ofMagnitude: amaxBits, in: x)) }
        let d = Float16(Float(bitPattern: amaxBits) / 127)
        let inverse = Vector(repeating: Float(d) != 0 ? 1 / Float(d) : 0)
        if !d.isFinite { throw ScaleOverflow() }
        q8Store(v0, inverse, q)
        q8Store(v1, inverse, q + 8)
        q8Store(v2, inverse, q + 16)
        q8Store(v3, inverse, q + 24)
        return d
    }

    @inline(__always)
    static func q8Store(_ v: Vector, _ inverse: Vector, _ q: UnsafeMutablePointer<UInt8>) {
        storeLowBytes(roundedCodes(_mm256_mul_ps(v, inverse), low: -127, high: 127), q)
    }

    // MARK: q4

    @inline(__always)
    static func q4Codes(_ v: Vector, _ inverse: Vector, bounded: Bool) -> Vector {
        _mm256_cvtepi32_ps(roundedCodes(_mm256_mul_ps(v, inverse), low: -8, high: 7, bounded: bounded))
    }

    /// Σx·q (in the order of `ScalarQuantization.q4Sums`) and Σq² for scale d.
    @inline(__always)
    static func q4Sums(_ v0: Vector, _ v1: Vector, _ v2: Vector, _ v3: Vector, scale d: Float16,
                       bounded: Bool) -> (Float, Float) {
        let inverse = Vector(repeating: 1 / Float(d))
        let c0 = q4Codes(v0, inverse, bounded: bounded), c1 = q4Codes(v1, inverse, bounded: bounded)
        let c2 = q4Codes(v2, inverse, bounded: bounded), c3 = q4Codes(v3, inverse, bounded: bounded)
        var sxq = _mm256_fmadd_ps(v0, c0, Vector.zero) // the spec starts each lane at fma(x, q, +0)
        sxq = _mm256_fmadd_ps(v1, c1, sxq)
        sxq = _mm256_fmadd_ps(v2, c2, sxq)
        sxq = _mm256_fmadd_ps(v3, c3, sxq)
        var squares = _mm256_mul_ps(c0, c0)    // small integers: exact in any order
        squares = _mm256_fmadd_ps(c1, c1, squares)
        squares = _mm256_fmadd_ps(c2, c2, squares)
        squares = _mm256_fmadd_ps(c3, c3, squares)
        let s = sxq, q = squares
        let sum = ((s[0] + s[4]) + (s[2] + s[6])) + ((s[1] + s[5]) + (s[3] + s[7]))
        let sqq = ((q[0] + q[4]) + (q[2] + q[6])) + ((q[1] + q[5]) + (q[3] + q[7]))
        return (sum, sqq)
    }

    static func quantizeQ4Block(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<UInt8>) throws -> Float16 {
        let v0 = load(x, 0), v1 = load(x, 1), v2 = load(x, 2), v3 = load(x, 3)
        let amaxBits = maxMagnitudeBits(v0, v1, v2, v3)
        if amaxBits >= 0x7F80_0000 { throw NonFiniteValue(index: firstIndex(ofMagnitude: amaxBits, in: x)) }
        if amaxBits == 0 {
            q.initialize(repeating: 0x88, count: 16)
            return 0
        }
        let m = x[firstIndex(ofMagnitude: amaxBits, in: x)]
        if !Float16(m / -9.5).isFinite { throw ScaleOverflow() }
        var best = Float.infinity, bestScale: Float16 = 0, bestSxq: Float = 0, bestSqq: Float = 0
        for k in 0..<5 {
            let d = Float16(m / (-7.5 - Float(k) * 0.5)) // ScalarQuantization.q4Divisors[k], exactly
            guard d.isFinite, d != 0 else { continue }
            // |x / d| ≤ |m / d| ≤ 1.5·9.5 even when d is an f16 subnormal (within half its ulp
            // 2⁻²⁵ of m/t, and ≥ 2⁻²⁴): bounded.
            let (sxq, sqq) = q4Sums(v0, v1, v2, v3, scale: d, bounded: true)
            let score = ScalarQuantization.q4Score(scale: d, sxq: sxq, sqq: sqq)
            if score < best { best = score; bestScale = d; bestSxq = sxq; bestSqq = sqq }
        }
        if bestSqq > 0 {
            let d = Float16(bestSxq / bestSqq)
            if d.isFinite, d != 0 {
                let (sxq, sqq) = q4Sums(v0, v1, v2, v3, scale: d, bounded: false)
                if ScalarQuantization.q4Score(scale: d, sxq: sxq, sqq: sqq) < best { bestScale = d }
            }
        }
        let inverse = Vector(repeating: Float(bestScale) != 0 ? 1 / Float(bestScale) : 0)
        let eight = _mm256_set1_epi32(8)
        func u(_ v: Vector) -> __m256i { _mm256_add_epi32(roundedCodes(_mm256_mul_ps(v, inverse), low: -8, high: 7), eight) }
        // Byte j: value j in the low nibble, value j + 16 in the high one (FORMAT.md "q4 block").
        storeLowBytes(_mm256_or_si256(u(v0), _mm256_slli_epi32(u(v2), 4)), q)
        storeLowBytes(_mm256_or_si256(u(v1), _mm256_slli_epi32(u(v3), 4)), q + 8)
        return bestScale
    }
}
#else
/// The portable build (no intrinsics): the normative scalar code, after the same checks as the
/// SIMD version (so errors name the same value).
extension FastQuantization {
    /// max|x| of a block as bits; throws the first non-finite value.
    static func finiteMagnitudeBits(_ x: UnsafePointer<Float>) throws -> UInt32 {
        var amaxBits: UInt32 = 0
        for j in 0..<32 { amaxBits = max(amaxBits, x[j].bitPattern & 0x7FFF_FFFF) }
        if amaxBits >= 0x7F80_0000 { throw NonFiniteValue(index: firstIndex(ofMagnitude: amaxBits, in: x)) }
        return amaxBits
    }

    static func quantizeQ8Block(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<UInt8>) throws -> Float16 {
        let amaxBits = try finiteMagnitudeBits(x)
        if !Float16(Float(bitPattern: amaxBits) / 127).isFinite { throw ScaleOverflow() }
        return ScalarQuantization.quantizeQ8Block(Array(UnsafeBufferPointer(start: x, count: 32)), into: q)
    }

    static func quantizeQ4Block(_ x: UnsafePointer<Float>, into q: UnsafeMutablePointer<UInt8>) throws -> Float16 {
        let amaxBits = try finiteMagnitudeBits(x)
        if amaxBits != 0 && !Float16(x[firstIndex(ofMagnitude: amaxBits, in: x)] / -9.5).isFinite { throw ScaleOverflow() }
        return ScalarQuantization.quantizeQ4Block(Array(UnsafeBufferPointer(start: x, count: 32)), into: q)
    }
}
#endif
