/// The normative scalar definitions of the quantized weight types (see `WeightType` and
/// docs/FORMAT.md). SIMD kernels and loaders are tested against these functions; change them
/// only together with the format version.
public enum ScalarQuantization {
    /// Quantizes `rows` rows of `columns` floats (row-major, contiguous) into the layout of
    /// `type`. `destination` must hold `type.byteCount(rows:columns:)` bytes.
    public static func quantize(_ source: UnsafePointer<Float>, rows: Int, columns: Int,
                                as type: WeightType, into destination: UnsafeMutableRawPointer) {
        switch type {
        case .f32:
            destination.copyMemory(from: source, byteCount: rows * columns * 4)
        case .f16:
            let out = destination.assumingMemoryBound(to: Float16.self)
            for i in 0..<(rows * columns) { out[i] = Float16(source[i]) }
        case .bf16:
            let out = destination.assumingMemoryBound(to: UInt16.self)
            for i in 0..<(rows * columns) { out[i] = bfloat16Bits(source[i]) }
        case .q8, .q4:
            let blocks = WeightType.blocksPerRow(columns)
            let quants = destination.assumingMemoryBound(to: UInt8.self)
            let scales = (destination + type.scalesOffset(rows: rows, columns: columns))
                .assumingMemoryBound(to: Float16.self)
            // Zero the alignment gap between the planes so the bytes are deterministic.
            let quantBytes = rows * blocks * type.quantBytesPerBlock
            (destination + quantBytes).initializeMemory(
                as: UInt8.self, repeating: 0, count: type.scalesOffset(rows: rows, columns: columns) - quantBytes)
            var block = [Float](repeating: 0, count: WeightType.blockSize)
            for r in 0..<rows {
                for b in 0..<blocks {
                    for j in 0..<WeightType.blockSize {
                        let c = b * WeightType.blockSize + j
                        block[j] = c < columns ? source[r * columns + c] : 0
                    }
                    let blockIndex = r * blocks + b
                    let q = quants + blockIndex * type.quantBytesPerBlock
                    scales[blockIndex] = type == .q8 ? quantizeQ8Block(block, into: q) : quantizeQ4Block(block, into: q)
                }
            }
        }
    }

    /// Dequantizes rows of `type` back to floats (the values the kernels must compute with).
    public static func dequantize(_ source: UnsafeRawPointer, rows: Int, columns: Int,
                                  as type: WeightType, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: rows * columns * 4)
        case .f16:
            let input = source.assumingMemoryBound(to: Float16.self)
            for i in 0..<(rows * columns) { out[i] = Float(input[i]) }
        case .bf16:
            let input = source.assumingMemoryBound(to: UInt16.self)
            for i in 0..<(rows * columns) { out[i] = Float(bitPattern: UInt32(input[i]) << 16) }
        case .q8, .q4:
            let blocks = WeightType.blocksPerRow(columns)
            let quants = source.assumingMemoryBound(to: UInt8.self)
            let scales = (source + type.scalesOffset(rows: rows, columns: columns)).assumingMemoryBound(to: Float16.self)
            for r in 0..<rows {
                for c in 0..<columns {
                    let b = c / WeightType.blockSize, j = c % WeightType.blockSize
                    let blockIndex = r * blocks + b
                    let d = Float(scales[blockIndex])
                    let q = quants + blockIndex * type.quantBytesPerBlock
                    let value: Int
                    if type == .q8 {
                        value = Int(Int8(bitPattern: q[j]))
                    } else {
                        let byte = q[j % 16]
                        value = Int(j < 16 ? byte & 0x0F : byte >> 4) - 8
                    }
                    out[r * columns + c] = d * Float(value)
                }
            }
        }
    }

    /// q8: d = max|x| / 127, q = round(x / d) (ties away from zero). Returns the f16 scale.
    /// The quants are computed with the f16-rounded scale's inverse so that dequantization with
    /// the stored scale is as close as possible.
    static func quantizeQ8Block(_ x: [Float], into q: UnsafeMutablePointer<UInt8>) -> Float16 {
        var amax: Float = 0
        for v in x { amax = max(amax, abs(v)) }
        let d = Float16(amax / 127)
        let inverse: Float = Float(d) != 0 ? 1 / Float(d) : 0
        for j in 0..<32 {
            let v = (x[j] * inverse).rounded(.toNearestOrAwayFromZero)
            q[j] = UInt8(bitPattern: Int8(max(-127, min(127, v))))
        }
        return d
    }

    /// q4 candidate divisors t_k = −7.5 − k/2, k = 0…4: candidate scales d_k = f16(m / t_k).
    /// t = −8 is GGML Q4_0 (m maps exactly to −8·d); |t| > 8 clips m to −8·d for a finer step
    /// for the rest, t = −7.5 widens the step. On Gaussian blocks the best of these plus one
    /// least-squares refinement has 9.7% less squared error than Q4_0 alone (16 divisors from −10
    /// to −6.25 gain 11.3% at three times the cost; docs/FORMAT.md, "q4 block").
    public static let q4Divisors: [Float] = [-7.5, -8, -8.5, -9, -9.5]

    /// q4, error-minimizing scale: m is the value of largest magnitude (the first one, with its
    /// sign). Each candidate d_k = f16(m / t_k) (see `q4Divisors`), then the least-squares scale
    /// f16(Σx·q / Σq²) of the best candidate's codes q, is scored by the squared error it gives
    /// with its own codes u = clamp(round(x / d) + 8, 0, 15); the first candidate with the
    /// smallest score wins, the refinement only if strictly smaller. Returns the f16 scale.
    /// Requires finite x (`TensorConversion` rejects non-finite weights with a named error).
    static func quantizeQ4Block(_ x: [Float], into q: UnsafeMutablePointer<UInt8>) -> Float16 {
        let d = x.withUnsafeBufferPointer { q4Scale($0.baseAddress!) }
        let inverse: Float = Float(d) != 0 ? 1 / Float(d) : 0
        for j in 0..<16 {
            let low = q4Code(x[j], inverse: inverse) + 8, high = q4Code(x[j + 16], inverse: inverse) + 8
            q[j] = UInt8(low) | (UInt8(high) << 4)
        }
        return d
    }

    /// The error-minimizing f16 scale of one q4 block of 32 values (see `quantizeQ4Block`).
    public static func q4Scale(_ x: UnsafePointer<Float>) -> Float16 {
        var amax: Float = 0, m: Float = 0
        for j in 0..<32 where abs(x[j]) > amax { amax = abs(x[j]); m = x[j] }
        if amax == 0 { return 0 }
        var best = Float.infinity, bestScale: Float16 = 0, bestSxq: Float = 0, bestSqq: Float = 0
        for t in q4Divisors {
            let d = Float16(m / t)
            guard d.isFinite, d != 0 else { continue }
            let (sxq, sqq) = q4Sums(x, scale: d)
            let score = q4Score(scale: d, sxq: sxq, sqq: sqq)
            if score < best { best = score; bestScale = d; bestSxq = sxq; bestSqq = sqq }
        }
        if bestSqq > 0 {
            let d = Float16(bestSxq / bestSqq)
            if d.isFinite, d != 0 {
                let (sxq, sqq) = q4Sums(x, scale: d)
                if q4Score(scale: d, sxq: sxq, sqq: sqq) < best { bestScale = d }
            }
        }
        return bestScale
    }

    /// The signed q4 code clamp(round(x · inverse), −8, 7), ties away from zero.
    @inline(__always)
    static func q4Code(_ x: Float, inverse: Float) -> Float {
        max(-8, min(7, (x * inverse).rounded(.toNearestOrAwayFromZero)))
    }

    /// Σx·q and Σq² of a block for the codes of scale d, in a fixed order (so the SIMD quantizer
    /// gets the same bits): eight lane sums s_l = Σ_i x[l+8i]·q[l+8i] (i = 0…3, fused
    /// multiply-adds from 0), then (s_l + s_{l+4}), then pairs (0+2, 1+3), then 0+1.
    static func q4Sums(_ x: UnsafePointer<Float>, scale d: Float16) -> (sxq: Float, sqq: Float) {
        let inverse = 1 / Float(d)
        var lanes = [Float](repeating: 0, count: 8), squares: Float = 0
        for i in 0..<4 {
            for l in 0..<8 {
                let v = x[l + 8 * i], code = q4Code(v, inverse: inverse)
                lanes[l] = lanes[l].addingProduct(v, code)
                squares += code * code // integers ≤ 2048: exact in any order
            }
        }
        let four = (0..<4).map { lanes[$0] + lanes[$0 + 4] }
        let two = [four[0] + four[2], four[1] + four[3]]
        return (two[0] + two[1], squares)
    }

    /// Squared error of a block with scale d minus Σx² (a constant of the block):
    /// d·(d·Σq² − 2·Σx·q), evaluated in Float in exactly this order.
    @inline(__always)
    static func q4Score(scale d: Float16, sxq: Float, sqq: Float) -> Float {
        let f = Float(d)
        return f * (f * sqq - 2 * sxq)
    }

    /// Activation quantization (runtime only, never stored): the q8/q4 kernels multiply the
    /// weights' integers with activations quantized to int8 per block of 32, as GGML does for
    /// Q4_0×Q8_0. `count` (≤ 32) values from `x`; the rest of the block is zero.
    /// da = max|x| / 127 kept as Float (not rounded to f16: it costs nothing and loses less),
    /// q = clamp(round(x · (1 / da)), −127, 127), ties away from zero. Returns da (0 for a zero block).
    public static func quantizeActivationBlock(_ x: UnsafePointer<Float>, count: Int,
                                               into q: UnsafeMutablePointer<Int8>) -> Float {
        // max|x| with four running maxima: the same value (max is exact and order-free) without
        // a 32-long dependency chain; this runs for every activation vector of every token.
        var m0: Float = 0, m1: Float = 0, m2: Float = 0, m3: Float = 0
        var j = 0
        while j + 4 <= count {
            m0 = max(m0, abs(x[j])); m1 = max(m1, abs(x[j + 1]))
            m2 = max(m2, abs(x[j + 2])); m3 = max(m3, abs(x[j + 3]))
            j += 4
        }
        while j < count { m0 = max(m0, abs(x[j])); j += 1 }
        let amax = max(max(m0, m1), max(m2, m3))
        let d = amax / 127
        let inverse: Float = d != 0 ? 1 / d : 0
        for j in 0..<WeightType.blockSize {
            if j < count {
                let v = (x[j] * inverse).rounded(.toNearestOrAwayFromZero)
                q[j] = Int8(max(-127, min(127, v)))
            } else {
                q[j] = 0
            }
        }
        return d
    }

    /// Float → bfloat16 bits, round to nearest even (NaN stays NaN).
    public static func bfloat16Bits(_ x: Float) -> UInt16 {
        let bits = x.bitPattern
        if x.isNaN { return UInt16(bits >> 16) | 0x40 }
        let rounding = ((bits >> 16) & 1) &+ 0x7FFF
        return UInt16((bits &+ rounding) >> 16)
    }
}
