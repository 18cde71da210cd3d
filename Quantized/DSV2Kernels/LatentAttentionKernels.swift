import CKernelSupport
import DSV2Formats

/// The products of absorbed MLA over the latent cache. Decode reads each cached row
/// [c_KV | k^R] once for all heads of a token, so the products take every head at once:
///
///   scores        s[j·lanes + h]  = Σ_{c < width} qᵀ[c·lanes + h] · row_j[c]
///   weighted sum  ctx[h·rank + c] += Σ_{j < count} p[j·lanes + h] · row_j[c]   (c < rank)
///
/// with the heads padded to `lanes` (a multiple of `headLanes`; the padding lanes of qᵀ are 0).
/// Besides them (implemented in `LatentProducts`, chosen per kernel path by `KernelTable`):
/// the small mat-vecs with W^UKᵀ and W^UV, whose f16/f32 rows multiply plain floats.
///
/// **The numbers are fixed by the definition, not by the implementation.** Every output element
/// is one chain of fused multiply-adds in a fixed order — scores over c ascending from 0, the
/// weighted sum over j ascending from the value already in ctx — so every implementation that
/// keeps the chain is bit-identical to the scalar definition (`Spec`) whatever its register
/// blocking.
public enum LatentAttentionKernels {
    /// Heads per vector of the score product and of the softmax (SIMD16).
    public static let headLanes = 16

    /// `heads` rounded up to whole vectors.
    public static func lanes(heads: Int) -> Int { (heads + headLanes - 1) / headLanes * headLanes }

    /// Dot product of one f16/f32 row of `columns` values with `x`.
    @inline(__always)
    public static func dot(_ row: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int, type: WeightType) -> Float {
        switch type {
        case .f16: return RowDot.f16(row, x, columns: columns)
        case .f32: return RowDot.f32(row, x, columns: columns)
        default: preconditionFailure("latent attention products take f16 or f32 rows, not \(type)")
        }
    }

    /// y[r − rows.lowerBound] = W[r] · x for r in `rows` (W f16 or f32, x plain floats): the
    /// absorbed query W^UKᵀ q^C and the value W^UV · context.
    @inline(__always)
    public static func matvec(_ w: QuantizedMatrix, rows: Range<Int>, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        let stride = w.rowStride
        var out = y
        for r in rows {
            out.pointee = dot(w.data + r &* stride, x, columns: w.columns, type: w.type)
            out += 1
        }
    }

    // MARK: The definition

    /// The products written as their definition, one scalar fused multiply-add at a time: what
    /// every exact implementation equals bit for bit, and what vdpbf16ps approaches within the
    /// rounding of its bf16 inputs.
    public enum Spec {
        public static func scores(type: WeightType, _ qT: UnsafePointer<Float>, lanes: Int, rows: UnsafeRawPointer, rowBytes: Int,
                                  count: Int, width: Int, into s: UnsafeMutablePointer<Float>) {
            for j in 0..<count {
                for h in 0..<lanes {
                    var sum: Float = 0
                    for c in 0..<width { sum = sum.addingProduct(qT[c * lanes + h], element(type, rows + j * rowBytes, c)) }
                    s[j * lanes + h] = sum
                }
            }
        }

        public static func weightedSum(type: WeightType, _ p: UnsafePointer<Float>, lanes: Int, heads: Int, rows: UnsafeRawPointer,
                                       rowBytes: Int, count: Int, rank: Int, into ctx: UnsafeMutablePointer<Float>) {
            for h in 0..<heads {
                for c in 0..<rank {
                    var sum = ctx[h * rank + c]
                    for j in 0..<count { sum = sum.addingProduct(p[j * lanes + h], element(type, rows + j * rowBytes, c)) }
                    ctx[h * rank + c] = sum
                }
            }
        }

        public static func element(_ type: WeightType, _ row: UnsafeRawPointer, _ c: Int) -> Float {
            switch type {
            case .f16: return Float(row.loadUnaligned(fromByteOffset: c * 2, as: Float16.self))
            case .bf16: return Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: c * 2, as: UInt16.self)) << 16)
            case .f32: return row.loadUnaligned(fromByteOffset: c * 4, as: Float.self)
            default: preconditionFailure("the latent cache holds f16, bf16 or f32 values, not \(type)")
            }
        }
    }
}

/// The two products of `LatentAttentionKernels` for one cache element type on one kernel path
/// (an entry of `KernelTable`).
public struct LatentAttentionProducts: Sendable {
    /// (qᵀ, lanes, rows, rowBytes, count, width, scratch, s): the score product.
    public typealias Scores = @Sendable (UnsafePointer<Float>, Int, UnsafeRawPointer, Int, Int, Int,
                                         UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    /// (p, lanes, heads, rows, rowBytes, count, rank, scratch, ctx): the weighted sum, added to
    /// ctx; count ≤ `LatentAttention.tileRows`.
    public typealias WeightedSum = @Sendable (UnsafePointer<Float>, Int, Int, UnsafeRawPointer, Int, Int, Int,
                                              UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void

    public let scores: Scores
    public let weightedSum: WeightedSum
    /// The implementation's name (test messages, `dsv2 bench kernels`).
    public let name: String
    /// Whether the products equal their definition bit for bit (`LatentAttentionKernels.Spec`);
    /// false for vdpbf16ps, which rounds the query and the weights to bf16.
    public let exact: Bool

    /// Scratch floats either product needs (`scratch`) for rows of `width` values and `lanes`
    /// head lanes: rows widened to floats one register block at a time, or bf16 pairs of the
    /// query's columns or of the weights' rows.
    public static func scratchFloats(width: Int, lanes: Int) -> Int {
        max(16 * width, (width + 1) / 2 * lanes, (LatentAttention.tileRows + 1) / 2 * lanes)
    }

    /// Swift SIMD on ymm registers (`LatentProducts` of module DSV2Kernels: x86-64-v3, or a portable build).
    static let f16 = LatentAttentionProducts(
        scores: { LatentProducts.scoresF16($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { LatentProducts.weightedSumF16($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6,
                                                     scratch: $7, into: $8) },
        name: "f16", exact: true)
    static let bf16 = LatentAttentionProducts(
        scores: { LatentProducts.scoresBF16($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { LatentProducts.weightedSumBF16($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6,
                                                      scratch: $7, into: $8) },
        name: "bf16", exact: true)
    static let f32 = LatentAttentionProducts(
        scores: { LatentProducts.scoresF32($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { LatentProducts.weightedSumF32($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6,
                                                     scratch: $7, into: $8) },
        name: "f32", exact: true)
}
