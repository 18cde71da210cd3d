import CBLAS
import Foundation
import DSV2Core

/// A row-major matrix, `rows × columns`, used in fp32. Projection weights are stored as
/// PyTorch's `nn.Linear.weight`: [outFeatures, inFeatures].
///
/// The values live either in memory as fp32 (`init(rows:columns:values:)`), or in a
/// memory-mapped checkpoint as BF16/F16/F32 (`init(rows:columns:mapped:dtype:owner:)`), widened
/// block by block when used: same results, a quarter to a half of the memory for 16-bit
/// checkpoints, and the page cache can stream weights larger than RAM.
public struct Matrix: @unchecked Sendable {
    public let rows: Int
    public let columns: Int
    private let storage: Storage

    private enum Storage {
        case dense([Float])
        /// `owner` keeps the mapping alive (e.g. the `SafetensorsCheckpoint`).
        case mapped(base: UnsafeRawPointer, dtype: SafetensorsDType, owner: AnyObject)
    }

    public init(rows: Int, columns: Int, values: [Float]) {
        precondition(values.count == rows * columns, "Matrix \(rows)×\(columns) given \(values.count) values")
        self.rows = rows
        self.columns = columns
        storage = .dense(values)
    }

    /// A matrix over mapped little-endian `bytes` of a floating-point `dtype`, valid while `owner` lives.
    public init(rows: Int, columns: Int, mapped bytes: UnsafeRawBufferPointer, dtype: SafetensorsDType, owner: AnyObject) {
        precondition(dtype.isFloatingPoint && bytes.count == rows * columns * dtype.byteSize,
                     "Matrix \(rows)×\(columns) over \(bytes.count) bytes of \(dtype)")
        self.rows = rows
        self.columns = columns
        storage = rows * columns == 0 ? .dense([]) : .mapped(base: bytes.baseAddress!, dtype: dtype, owner: owner)
    }

    public var outFeatures: Int { rows }
    public var inFeatures: Int { columns }

    /// Whether the values are widened from a mapped checkpoint at use.
    public var isMapped: Bool { if case .mapped = storage { return true } else { return false } }

    /// All values in fp32 (a widened copy when mapped).
    public var values: [Float] {
        switch storage {
        case let .dense(values): return values
        case .mapped: return withRows(0..<rows) { Array(UnsafeBufferPointer(start: $0, count: rows * columns)) }
        }
    }

    /// Calls `body` with rows `range` as contiguous fp32 [range.count, columns] (no copy when dense).
    public func withRows<R>(_ range: Range<Int>, _ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows)
        switch storage {
        case let .dense(values):
            return try values.withUnsafeBufferPointer { try body($0.baseAddress! + range.lowerBound * columns) }
        case let .mapped(base, dtype, _):
            var scratch = [Float](repeating: 0, count: max(range.count * columns, 1))
            scratch.withUnsafeMutableBufferPointer { s in
                widenRows(range, base: base, dtype: dtype, into: s.baseAddress!)
            }
            return try scratch.withUnsafeBufferPointer { try body($0.baseAddress!) }
        }
    }

    private func widenRows(_ range: Range<Int>, base: UnsafeRawPointer, dtype: SafetensorsDType, into out: UnsafeMutablePointer<Float>) {
        let count = range.count * columns
        let source = UnsafeRawBufferPointer(start: base + range.lowerBound * columns * dtype.byteSize, count: count * dtype.byteSize)
        ElementConversion.widen(source, dtype: dtype, into: out, count: count)
    }

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

    /// Rows widened per block when mapped (~1 MB of fp32, so the block stays in L2).
    static let mappedBlockFloats = 1 << 18

    /// Pointer form of `apply(_:tokens:)`; `x` holds `tokens × inFeatures`, `y` gets `tokens × outFeatures`.
    public func apply(_ x: UnsafePointer<Float>, tokens: Int, into y: UnsafeMutablePointer<Float>) {
        precondition(tokens >= 0)
        guard tokens > 0, rows > 0 else { return }
        switch storage {
        case let .dense(values):
            values.withUnsafeBufferPointer { w in
                Self.multiply(x, tokens: tokens, weights: w.baseAddress!, rows: rows, columns: columns, into: y, ldy: rows)
            }
        case let .mapped(base, dtype, _):
            let block = max(1, Self.mappedBlockFloats / max(columns, 1))
            var scratch = [Float](repeating: 0, count: min(block, rows) * columns)
            scratch.withUnsafeMutableBufferPointer { s in
                for first in stride(from: 0, to: rows, by: block) {
                    let count = min(block, rows - first)
                    widenRows(first ..< first + count, base: base, dtype: dtype, into: s.baseAddress!)
                    Self.multiply(x, tokens: tokens, weights: s.baseAddress!, rows: count, columns: columns,
                                  into: y + first, ldy: rows)
                }
            }
        }
    }

    /// y[:, 0..<rows] (leading dimension ldy) = x [tokens, columns] · W[rows, columns]ᵀ.
    private static func multiply(_ x: UnsafePointer<Float>, tokens: Int, weights w: UnsafePointer<Float>, rows: Int,
                                 columns: Int, into y: UnsafeMutablePointer<Float>, ldy: Int) {
        if tokens == 1 {
            cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(rows), Int32(columns), 1, w, Int32(columns), x, 1, 0, y, 1)
        } else {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(tokens), Int32(rows), Int32(columns), 1,
                        x, Int32(columns), w, Int32(columns), 0, y, Int32(ldy))
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
