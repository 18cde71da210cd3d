import XCTest
import DSV2Core
import TestSupport
import DSV2Formats
@testable import DSV2Kernels

/// The SIMD kernels against the scalar spec: every weight type, odd sizes and the real row
/// lengths of DeepSeek-V2 / V2-Lite.
final class KernelMatVecTests: XCTestCase {
    /// Row lengths of the real models (hidden 2048/5120, MoE 1408/1536, dense 10944/12288,
    /// kv_lora 512, q_lora 1536, qk_nope+rope 192, v/rope 128/64) and of the tiny fixtures,
    /// plus lengths that are not multiples of 32 or leave odd block counts.
    static let columns = [1, 5, 31, 32, 33, 48, 64, 96, 100, 128, 160, 192, 250, 512, 1408, 1536,
                          2048, 5120, 10944, 12288]

    /// Float-rounding bound of a kernel dot against the exact (Double) reference. The kernels
    /// compute the integer block sums exactly; only the scale products and the accumulation
    /// round. For a sum of n terms accumulated with fewer than k sequential float32 operations
    /// per chain, |error| ≤ γ_k · Σ|terms| with γ_k ≈ k · 2^-24 (Higham 3.1). Each chain here has
    /// at most columns/32 FMAs + 1 scale product + 16 reduction adds; we use k = columns/16 + 32,
    /// twice that, so the bound is sound without being loose enough to hide a wrong block.
    func bound(columns: Int, magnitude: Double) -> Double {
        Double(columns / 16 + 32) * 0x1p-24 * magnitude + 1e-30
    }

    func checkAgainstReference(_ type: WeightType, seed: UInt64) {
        var random = SplitMix64(seed: seed)
        for columns in Self.columns {
            let rows = columns >= 5120 ? 2 : 5
            let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
            let x = random.floats(columns, scale: 2)
            let y = kernelMatvec(w, x)
            for r in 0..<rows {
                let (value, magnitude) = referenceDot(w, row: r, x: x)
                XCTAssertLessThanOrEqual(abs(Double(y[r]) - value), bound(columns: columns, magnitude: magnitude),
                                         "\(type) [\(rows), \(columns)] row \(r): kernel \(y[r]) reference \(value)")
            }
        }
    }

    func testQ8MatchesScalarReference() { checkAgainstReference(.q8, seed: 10) }
    func testQ8PortableMatchesScalarReference() { portable { checkAgainstReference(.q8, seed: 15) } }
    func testQ4PortableMatchesScalarReference() { portable { checkAgainstReference(.q4, seed: 16) } }
    func testPortableIntegerDotProductsAreExact() { portable { testIntegerDotProductsAreExact() } }

    /// Runs `body` with the portable integer kernels (pure Swift SIMD: 16-bit lanes, shifts and
    /// masks), the path CPUs other than x86-64 take; on x86-64 the AVX2 versions are the default.
    func portable(_ body: () -> Void) {
        Kernels.usePortableKernels = true
        defer { Kernels.usePortableKernels = false }
        body()
    }
    func testQ4MatchesScalarReference() { checkAgainstReference(.q4, seed: 11) }

    // The AVX2 integer kernels, which CPUs without AVX-VNNI run (on those the default tests
    // above run them too; on a VNNI machine only these do).
    func testQ8AVX2MatchesScalarReference() { avx2 { checkAgainstReference(.q8, seed: 17) } }
    func testQ4AVX2MatchesScalarReference() { avx2 { checkAgainstReference(.q4, seed: 18) } }
    func testAVX2IntegerDotProductsAreExact() { avx2 { testIntegerDotProductsAreExact() } }
    func testAVX2MatmulEqualsMatvecPerToken() { avx2 { testMatmulEqualsMatvecPerToken() } }
    func testPortableMatmulEqualsMatvecPerToken() { portable { testMatmulEqualsMatvecPerToken() } }

    /// Runs `body` with the AVX2 integer kernels even where AVX-VNNI is available.
    func avx2(_ body: () -> Void) {
        Kernels.forceAVX2Kernels = true
        defer { Kernels.forceAVX2Kernels = false }
        body()
    }

    /// The AVX-VNNI kernels compute the same exact integer sums as the AVX2 ones and then the
    /// same float operations in the same order: mat-vec and mat-mat results must be identical
    /// bit for bit (so a model's output does not depend on which of the two CPUs ran it).
    func testVNNIBitIdenticalToAVX2() throws {
        guard Kernels.hasAVXVNNI else {
            print("testVNNIBitIdenticalToAVX2: skipped, this CPU lacks AVX-VNNI (avx_vnni)")
            throw XCTSkip("this CPU lacks AVX-VNNI (avx_vnni)")
        }
        guard Kernels.usesAVXVNNI else {
            print("testVNNIBitIdenticalToAVX2: skipped, DSV2_DISABLE_VNNI is set")
            throw XCTSkip("DSV2_DISABLE_VNNI is set")
        }
        XCTAssertEqual(Kernels.integerPath, .vnni)
        var random = SplitMix64(seed: 50)
        for type in [WeightType.q8, .q4] {
            for columns in Self.columns {
                let rows = columns >= 5120 ? 3 : 7, tokens = 11  // micro-kernel groups and singles
                let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
                let x = random.floats(tokens * columns, scale: 2)
                let prepared = x.withUnsafeBufferPointer {
                    PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens)
                }
                func products() -> (matvec: [UInt32], matmul: [UInt32]) {
                    var single = [Float](repeating: .nan, count: tokens * rows)
                    var multi = [Float](repeating: .nan, count: tokens * rows)
                    single.withUnsafeMutableBufferPointer { y in
                        for t in 0..<tokens { Kernels.matvec(w, prepared, token: t, into: y.baseAddress! + t * rows) }
                    }
                    multi.withUnsafeMutableBufferPointer { Kernels.matmul(w, prepared, into: $0.baseAddress!) }
                    return (single.map(\.bitPattern), multi.map(\.bitPattern))
                }
                let vnni = products()
                var reference = vnni
                avx2 { reference = products() }
                XCTAssertEqual(vnni.matvec, reference.matvec, "\(type) [\(rows), \(columns)] mat-vec VNNI ≠ AVX2")
                XCTAssertEqual(vnni.matmul, reference.matmul, "\(type) [\(rows), \(columns)] mat-mat VNNI ≠ AVX2")
            }
        }
    }
    func testF16MatchesScalarReference() { checkAgainstReference(.f16, seed: 12) }
    func testBF16MatchesScalarReference() { checkAgainstReference(.bf16, seed: 13) }
    func testF32MatchesScalarReference() { checkAgainstReference(.f32, seed: 14) }

    /// Integer parts bit-exact: weights and activations chosen so that every scale is exactly 1
    /// (q8: a ±127 in every block; q4: a −8 in every block; activations: a ±127 in every block).
    /// Then y is an integer sum below 2^24, which float32 represents and accumulates exactly, so
    /// the kernel must return exactly Σ q_w · q_a — any lane, nibble or order mistake shows.
    func testIntegerDotProductsAreExact() {
        var random = SplitMix64(seed: 20)
        for type in [WeightType.q8, .q4] {
            for columns in [1, 31, 32, 33, 64, 96, 100, 250, 256, 288, 1000] {
                let rows = 4
                var w = [Float](repeating: 0, count: rows * columns)
                var x = [Float](repeating: 0, count: columns)
                for c in 0..<columns {
                    x[c] = c % 32 == 0 ? (random.int(0...1) == 0 ? 127 : -127) : Float(random.int(-127...127))
                }
                for r in 0..<rows {
                    for c in 0..<columns {
                        w[r * columns + c] = type == .q8
                            ? (c % 32 == 0 ? -127 : Float(random.int(-127...127)))
                            : (c % 32 == 0 ? -8 : Float(random.int(-7...7)))
                    }
                }
                let matrix = makeMatrix(w, rows: rows, columns: columns, type)
                let y = kernelMatvec(matrix, x)
                for r in 0..<rows {
                    var exact = 0
                    for c in 0..<columns { exact += Int(w[r * columns + c]) * Int(x[c]) }
                    XCTAssertEqual(y[r], Float(exact), "\(type) [\(rows), \(columns)] row \(r)")
                }
            }
        }
    }

    /// Mat-mat runs the same row kernel per token: it must equal mat-vec bit for bit.
    func testMatmulEqualsMatvecPerToken() {
        var random = SplitMix64(seed: 30)
        for type in WeightType.allCases {
            for (rows, columns) in [(37, 96), (64, 2048), (9, 100)] {
                // 11 = 4 + 4 + 3 singles (four-token micro-kernels), or 6 + 4 + 1 (q8 on VNNI).
                let tokens = 11
                let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
                let x = random.floats(tokens * columns)
                let prepared = x.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens) }
                var y = [Float](repeating: .nan, count: tokens * rows)
                y.withUnsafeMutableBufferPointer { Kernels.matmul(w, prepared, into: $0.baseAddress!) }
                for t in 0..<tokens {
                    let single = kernelMatvec(w, Array(x[(t * columns)..<((t + 1) * columns)]))
                    XCTAssertEqual(Array(y[(t * rows)..<((t + 1) * rows)]), single, "\(type) [\(rows), \(columns)] token \(t)")
                }
            }
        }
    }

    /// A row slice (one expert of a stacked tensor) multiplies like the same rows of the whole.
    func testRowSliceSharesStorage() {
        var random = SplitMix64(seed: 40)
        for type in WeightType.allCases {
            let w = makeMatrix(random.floats(12 * 100), rows: 12, columns: 100, type)
            let x = random.floats(100)
            let whole = kernelMatvec(w, x)
            let slice = kernelMatvec(w.rows(4..<9), x)
            XCTAssertEqual(slice, Array(whole[4..<9]), "\(type)")
        }
    }
}
