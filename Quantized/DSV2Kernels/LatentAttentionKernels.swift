import CKernelSupport
import DSV2Formats

/// The small products of absorbed MLA that the kernel layer has no entry point for: a float
/// mat-vec with an f32 input that is not quantized (W^UKᵀ, W^UV and the cached latents are f16 or
/// f32), and the weighted sum of cached rows Σ_j p_j · c_j (a transposed product). They use
/// `RowDot`'s f16/f32 row dots (the same on every kernel path) and the same code-generation
/// rules (raw-pointer loads, `SIMD16<Float>` with `addProduct`, F16C widening).
public enum LatentAttentionKernels {
    /// Dot product of one f16/f32 row of `columns` values with `x`.
    @inline(__always)
    public static func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int, type: WeightType) -> Float {
        switch type {
        case .f16: return RowDot.f16(row, x, columns: columns)
        case .f32: return RowDot.f32(row, x, columns: columns)
        default: preconditionFailure("latent attention products take f16 or f32 rows, not \(type)")
        }
    }

    /// y[r − rows.lowerBound] = W[r] · x for r in `rows` (W f16 or f32, x plain floats).
    @inline(__always)
    public static func matvec(_ w: QuantizedMatrix, rows: Range<Int>, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let stride = w.rowStride
        var out = y
        for r in rows {
            out.pointee = dot(w.data + r &* stride, x, columns: w.columns, type: w.type)
            out += 1
        }
    }

    /// out[0..<columns] = Σ_{j < count} p[j] · row_j[0..<columns], where row_j starts at
    /// base + j·rowBytes and holds f16 or f32 values. Column chunks of 64 keep four vector
    /// accumulators in registers while every row streams past (summation order per column: j
    /// ascending, independent of threads).
    public static func weightedRowSum(base: UnsafeRawPointer, rowBytes: Int, count: Int, weights p: UnsafePointer<Float>,
                                      columns: Int, type: WeightType, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f16:
            weightedRowSum(base: base, rowBytes: rowBytes, count: count, weights: p, columns: columns, elementBytes: 2,
                           into: out, load16: { RowDot.widen($0.loadUnaligned(fromByteOffset: $1, as: SIMD16<Float16>.self)) },
                           load1: { Float($0.loadUnaligned(fromByteOffset: $1, as: Float16.self)) })
        case .f32:
            weightedRowSum(base: base, rowBytes: rowBytes, count: count, weights: p, columns: columns, elementBytes: 4,
                           into: out, load16: { $0.loadUnaligned(fromByteOffset: $1, as: SIMD16<Float>.self) },
                           load1: { $0.loadUnaligned(fromByteOffset: $1, as: Float.self) })
        default:
            preconditionFailure("latent attention products take f16 or f32 rows, not \(type)")
        }
    }

    /// `weightedRowSum` for rows of `elementBytes`-byte values: `load16(row, byteOffset)` reads 16
    /// of them as floats, `load1` one.
    @inline(__always)
    static func weightedRowSum(base: UnsafeRawPointer, rowBytes: Int, count: Int, weights p: UnsafePointer<Float>,
                               columns: Int, elementBytes: Int, into out: UnsafeMutablePointer<Float>,
                               load16: (UnsafeRawPointer, Int) -> SIMD16<Float>, load1: (UnsafeRawPointer, Int) -> Float) {
        let outRaw = UnsafeMutableRawPointer(out)
        var c = 0
        while c &+ 64 <= columns {
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            var row = base + c &* elementBytes
            for j in 0..<count {
                let w = SIMD16<Float>(repeating: p[j])
                a0.addProduct(load16(row, 0), w)
                a1.addProduct(load16(row, 16 &* elementBytes), w)
                a2.addProduct(load16(row, 32 &* elementBytes), w)
                a3.addProduct(load16(row, 48 &* elementBytes), w)
                row += rowBytes
            }
            outRaw.storeBytes(of: a0, toByteOffset: c &* 4, as: SIMD16<Float>.self)
            outRaw.storeBytes(of: a1, toByteOffset: c &* 4 &+ 64, as: SIMD16<Float>.self)
            outRaw.storeBytes(of: a2, toByteOffset: c &* 4 &+ 128, as: SIMD16<Float>.self)
            outRaw.storeBytes(of: a3, toByteOffset: c &* 4 &+ 192, as: SIMD16<Float>.self)
            c &+= 64
        }
        while c &+ 16 <= columns {
            var a0 = SIMD16<Float>()
            var row = base + c &* elementBytes
            for j in 0..<count {
                a0.addProduct(load16(row, 0), SIMD16<Float>(repeating: p[j]))
                row += rowBytes
            }
            outRaw.storeBytes(of: a0, toByteOffset: c &* 4, as: SIMD16<Float>.self)
            c &+= 16
        }
        while c < columns {
            var sum: Float = 0
            for j in 0..<count { sum += p[j] * load1(base + j &* rowBytes, c &* elementBytes) }
            out[c] = sum
            c &+= 1
        }
    }
}
