import CBLAS
import Foundation

/// A row-major fp32 matrix, `rows × columns`. Projection weights are stored as PyTorch's
/// `nn.Linear.weight`: [outFeatures, inFeatures].
public struct Matrix: Sendable {
    public let rows: Int
    public let columns: Int
    public var values: [Float]

    public init(rows: Int, columns: Int, values: [Float]) {
        precondition(values.count == rows * columns, "Matrix \(rows)×\(columns) given \(values.count) values")
        self.rows = rows
        self.columns = columns
        self.values = values
    }

    public var outFeatures: Int { rows }
    public var inFeatures: Int { columns }

    /// y = x · Wᵀ for `tokens` input rows: x [tokens, inFeatures] → y [tokens, outFeatures].
    /// One token uses cblas_sgemv, several use cblas_sgemm.
    public func apply(_ x: [Float], tokens: Int) -> [Float] {
        var y = [Float](repeating: 0, count: tokens * rows)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                apply(xp.baseAddress!, tokens: tokens, into: yp.baseAddress!)
            }
        }
        return y
    }

    /// Pointer form of `apply(_:tokens:)`; `x` holds `tokens × inFeatures`, `y` gets `tokens × outFeatures`.
    public func apply(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>) {
        precondition(tokens >= 0)
        guard tokens > 0, rows > 0 else { return }
        values.withUnsafeBufferPointer { w in
            if tokens == 1 {
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(columns), 1,
                            w.baseAddress, Int32(columns), x, 1, 0, y, 1)
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(rows), Int32(columns), 1,
                            x, Int32(columns), w.baseAddress, Int32(columns), 0, y, Int32(rows))
            }
        }
    }
}

/// C[m, n] = alpha · op(A) · op(B) + beta · C, row-major with explicit leading dimensions
/// (so per-head slices of wider rows can be multiplied in place).
@inline(__always)
func gemm(transposeA: Bool = false, transposeB: Bool, m: Int, n: Int, k: Int, alpha: Float = 1,
          a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
          beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
    guard m > 0, n > 0 else { return }
    cblas_sgemm(CblasRowMajor, transposeA ? CblasTrans : CblasNoTrans, transposeB ? CblasTrans : CblasNoTrans,
                Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
}

/// The BLAS library the reference multiplies with.
public enum BLAS {
    /// Threads OpenBLAS uses for one product.
    public static var threadCount: Int { Int(openblas_get_num_threads()) }

    /// The CPU kernel set OpenBLAS chose at load time (e.g. "SkylakeX", "Haswell"; "Prescott"
    /// is its slow SSE3 fallback for CPUs its tables do not know).
    public static var coreName: String { String(cString: openblas_get_corename()) }
}
