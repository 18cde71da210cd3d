/// The SIMD quantizer of the converter and of in-memory quantization: float rows → q8/q4
/// planes, bit-identical to the normative `ScalarQuantization` (tested on random rows, ties,
/// zeros, subnormals and huge values in `FastQuantizationTests`), several times faster.
///
/// Written in the patterns of KERNELS.md: `SIMD8<Float>` arithmetic with fused multiply-adds,
/// bit reinterpretation instead of the standard library's element conversions, rounding with the
/// 2²³ trick. One block of 32 values is four vectors; lane l of the sums holds values l, l+8, l+16,
/// l+24, the order `ScalarQuantization.q4Sums` defines.
enum FastQuantization {
    typealias Vector = SIMD8<Float>
    typealias Bits = SIMD8<UInt32>

    /// A block whose values are not all finite: the index (0…31) of the first such value.
    struct NonFiniteValue: Error { let index: Int }
    /// A block whose largest magnitude overflows every f16 scale (q8: > 65504·127, q4: > 65504·10).
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

    @inline(__always)
    static func load(_ x: UnsafePointer<Float>, _ i: Int) -> Vector {
        UnsafeRawPointer(x + 8 * i).loadUnaligned(as: Vector.self)
    }

    /// max|x| of a block as bits (integer max of the magnitudes' bit patterns orders finite
    /// floats like their values, and puts inf/NaN above every finite value).
    @inline(__always)
    static func maxMagnitudeBits(_ v0: Vector, _ v1: Vector, _ v2: Vector, _ v3: Vector) -> UInt32 {
        let mask = Bits(repeating: 0x7FFF_FFFF)
        let m01 = pointwiseMax(unsafeBitCast(v0, to: Bits.self) & mask, unsafeBitCast(v1, to: Bits.self) & mask)
        let m23 = pointwiseMax(unsafeBitCast(v2, to: Bits.self) & mask, unsafeBitCast(v3, to: Bits.self) & mask)
        let m = pointwiseMax(m01, m23)
        let m4 = pointwiseMax(m.lowHalf, m.highHalf)
        let m2 = pointwiseMax(m4.lowHalf, m4.highHalf)
        return max(m2[0], m2[1])
    }

    /// The first index whose magnitude has bits `amaxBits`.
    @inline(__always)
    static func firstIndex(ofMagnitude amaxBits: UInt32, in x: UnsafePointer<Float>) -> Int {
        var j = 0
        while j < 31, x[j].bitPattern & 0x7FFF_FFFF != amaxBits { j += 1 }
        return j
    }

    /// round(y), ties away from zero, for |y| ≤ 2²²: the magnitude is rounded to nearest even by
    /// adding and subtracting 2²³, floored, then incremented when the fraction is ≥ ½ — all exact.
    @inline(__always)
    static func roundHalfAway(_ y: Vector) -> Vector {
        let bits = unsafeBitCast(y, to: Bits.self)
        let a = unsafeBitCast(bits & 0x7FFF_FFFF, to: Vector.self)
        let magic = Vector(repeating: 8_388_608)
        let nearest = (a + magic) - magic
        let one = Bits(repeating: Float(1).bitPattern)
        let floor = nearest - unsafeBitCast(unsafeBitCast(nearest .> a, to: Bits.self) & one, to: Vector.self)
        let rounded = floor + unsafeBitCast(unsafeBitCast(a - floor .>= 0.5, to: Bits.self) & one, to: Vector.self)
        return unsafeBitCast(unsafeBitCast(rounded, to: Bits.self) | (bits & 0x8000_0000), to: Vector.self)
    }

    /// Low byte of each lane of small integer-valued floats c (−2²² < c < 2²²): the bits of
    /// c + 1.5·2²³ are 0x4B40_0000 + c.
    @inline(__always)
    static func integerBits(_ c: Vector) -> Bits {
        unsafeBitCast(c + Vector(repeating: 12_582_912), to: Bits.self)
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
        let y = (v * inverse).clamped(lowerBound: Vector(repeating: -128), upperBound: Vector(repeating: 128))
        let c = roundHalfAway(y).clamped(lowerBound: Vector(repeating: -127), upperBound: Vector(repeating: 127))
        let bits = integerBits(c)
        for l in 0..<8 { q[l] = UInt8(truncatingIfNeeded: bits[l]) }
    }

    // MARK: q4

    @inline(__always)
    static func q4Codes(_ v: Vector, _ inverse: Vector) -> Vector {
        let y = (v * inverse).clamped(lowerBound: Vector(repeating: -9), upperBound: Vector(repeating: 8))
        return roundHalfAway(y).clamped(lowerBound: Vector(repeating: -8), upperBound: Vector(repeating: 7))
    }

    /// Σx·q (in the order of `ScalarQuantization.q4Sums`) and Σq² for scale d.
    @inline(__always)
    static func q4Sums(_ v0: Vector, _ v1: Vector, _ v2: Vector, _ v3: Vector, scale d: Float16) -> (Float, Float) {
        let inverse = Vector(repeating: 1 / Float(d))
        let c0 = q4Codes(v0, inverse), c1 = q4Codes(v1, inverse), c2 = q4Codes(v2, inverse), c3 = q4Codes(v3, inverse)
        var sxq = Vector.zero
        sxq = sxq.addingProduct(v0, c0)
        sxq = sxq.addingProduct(v1, c1)
        sxq = sxq.addingProduct(v2, c2)
        sxq = sxq.addingProduct(v3, c3)
        let squares = (c0 * c0 + c1 * c1) + (c2 * c2 + c3 * c3) // small integers: exact
        let four = sxq.lowHalf + sxq.highHalf
        let two = four.lowHalf + four.highHalf
        return (two[0] + two[1], squares.sum())
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
        if !Float16(m / ScalarQuantization.q4Divisors[0]).isFinite { throw ScaleOverflow() }
        var best = Float.infinity, bestScale: Float16 = 0, bestSxq: Float = 0, bestSqq: Float = 0
        for t in ScalarQuantization.q4Divisors {
            let d = Float16(m / t)
            guard d.isFinite, d != 0 else { continue }
            let (sxq, sqq) = q4Sums(v0, v1, v2, v3, scale: d)
            let score = ScalarQuantization.q4Score(scale: d, sxq: sxq, sqq: sqq)
            if score < best { best = score; bestScale = d; bestSxq = sxq; bestSqq = sqq }
        }
        if bestSqq > 0 {
            let d = Float16(bestSxq / bestSqq)
            if d.isFinite, d != 0 {
                let (sxq, sqq) = q4Sums(v0, v1, v2, v3, scale: d)
                if ScalarQuantization.q4Score(scale: d, sxq: sxq, sqq: sqq) < best { bestScale = d }
            }
        }
        let inverse = Vector(repeating: Float(bestScale) != 0 ? 1 / Float(bestScale) : 0)
        let eight = Vector(repeating: 8)
        let u0 = integerBits(q4Codes(v0, inverse) + eight) & 0xF, u1 = integerBits(q4Codes(v1, inverse) + eight) & 0xF
        let u2 = integerBits(q4Codes(v2, inverse) + eight) & 0xF, u3 = integerBits(q4Codes(v3, inverse) + eight) & 0xF
        // Byte j: value j in the low nibble, value j + 16 in the high one (FORMAT.md "q4 block").
        let low = u0 | (u2 &<< 4), high = u1 | (u3 &<< 4)
        for l in 0..<8 {
            q[l] = UInt8(truncatingIfNeeded: low[l])
            q[8 + l] = UInt8(truncatingIfNeeded: high[l])
        }
        return bestScale
    }
}
