import CKernelSupport
import DSV2Formats

/// The small products of absorbed MLA that the kernel layer has no entry point for: a float
/// mat-vec with an f32 input that is not quantized (W^UKᵀ, W^UV and the cached latents are f16 or
/// f32), and the weighted sum of cached rows Σ_j p_j · c_j (a transposed product). They use
/// `RowDot`'s f16/f32 row dots and the same code-generation rules (raw-pointer loads,
/// `SIMD16<Float>` with `addProduct`, F16C widening).
public enum LatentAttentionKernels {
    /// Dot product of one f16/f32 row of `columns` values with `x`.
    @inline(__always)
    public static func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int, type: WeightType) -> Float {
        type == .f16 ? RowDot.f16(row, x, columns: columns) : RowDot.f32(row, x, columns: columns)
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
        let outRaw = UnsafeMutableRawPointer(out)
        var c = 0
        if type == .f16 {
            while c &+ 64 <= columns {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var row = base + c &* 2
                for j in 0..<count {
                    let w = SIMD16<Float>(repeating: p[j])
                    a0.addProduct(RowDot.widen(row.loadUnaligned(as: SIMD16<Float16>.self)), w)
                    a1.addProduct(RowDot.widen(row.loadUnaligned(fromByteOffset: 32, as: SIMD16<Float16>.self)), w)
                    a2.addProduct(RowDot.widen(row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float16>.self)), w)
                    a3.addProduct(RowDot.widen(row.loadUnaligned(fromByteOffset: 96, as: SIMD16<Float16>.self)), w)
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
                var row = base + c &* 2
                for j in 0..<count {
                    a0.addProduct(RowDot.widen(row.loadUnaligned(as: SIMD16<Float16>.self)), SIMD16<Float>(repeating: p[j]))
                    row += rowBytes
                }
                outRaw.storeBytes(of: a0, toByteOffset: c &* 4, as: SIMD16<Float>.self)
                c &+= 16
            }
            while c < columns {
                var sum: Float = 0
                for j in 0..<count {
                    sum += p[j] * Float((base + j &* rowBytes).loadUnaligned(fromByteOffset: c &* 2, as: Float16.self))
                }
                out[c] = sum
                c &+= 1
            }
        } else {
            while c &+ 64 <= columns {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var row = base + c &* 4
                for j in 0..<count {
                    let w = SIMD16<Float>(repeating: p[j])
                    a0.addProduct(row.loadUnaligned(as: SIMD16<Float>.self), w)
                    a1.addProduct(row.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self), w)
                    a2.addProduct(row.loadUnaligned(fromByteOffset: 128, as: SIMD16<Float>.self), w)
                    a3.addProduct(row.loadUnaligned(fromByteOffset: 192, as: SIMD16<Float>.self), w)
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
                var row = base + c &* 4
                for j in 0..<count {
                    a0.addProduct(row.loadUnaligned(as: SIMD16<Float>.self), SIMD16<Float>(repeating: p[j]))
                    row += rowBytes
                }
                outRaw.storeBytes(of: a0, toByteOffset: c &* 4, as: SIMD16<Float>.self)
                c &+= 16
            }
            while c < columns {
                var sum: Float = 0
                for j in 0..<count {
                    sum += p[j] * (base + j &* rowBytes).loadUnaligned(fromByteOffset: c &* 4, as: Float.self)
                }
                out[c] = sum
                c &+= 1
            }
        }
    }
}
