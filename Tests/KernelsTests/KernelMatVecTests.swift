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

    func checkAgainstReference(_ type: WeightType, seed: UInt64, kernels: KernelTable = .native) {
        var random = SplitMix64(seed: seed)
        for columns in Self.columns {
            let rows = columns >= 5120 ? 2 : 5
            let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
            let x = random.floats(columns, scale: 2)
            let y = kernelMatvec(w, x, kernels: kernels)
            for r in 0..<rows {
                let (value, magnitude) = referenceDot(w, row: r, x: x)
                XCTAssertLessThanOrEqual(abs(Double(y[r]) - value), bound(columns: columns, magnitude: magnitude),
                                         "\(kernels.path) \(type) [\(rows), \(columns)] row \(r): kernel \(y[r]) reference \(value)")
            }
        }
    }

    /// Every kernel path this CPU can run (portable, AVX2, and AVX-VNNI / AVX-512 VNNI where
    /// present): each test below runs on all of them by building their tables.
    static let paths = KernelTable.runnable

    func testQ8MatchesScalarReferenceOnEveryPath() {
        for (i, kernels) in Self.paths.enumerated() { checkAgainstReference(.q8, seed: 10 + UInt64(i), kernels: kernels) }
    }
    func testQ4MatchesScalarReferenceOnEveryPath() {
        for (i, kernels) in Self.paths.enumerated() { checkAgainstReference(.q4, seed: 20 + UInt64(i), kernels: kernels) }
    }
    func testIntegerDotProductsAreExactOnEveryPath() {
        for kernels in Self.paths { checkIntegerDotProductsAreExact(kernels) }
    }
    func testMatmulEqualsMatvecPerTokenOnEveryPath() {
        for kernels in Self.paths { checkMatmulEqualsMatvecPerToken(kernels) }
    }

    /// On x86-64 the portable and AVX2 paths always run; a CPU with AVX-512 VNNI (AVX-512F, BW,
    /// VL and the OS's zmm state) or AVX-VNNI must also get those tables.
    func testTheTablesOfThisCPU() throws {
        let paths = Self.paths.map(\.path)
        XCTAssertTrue(paths.contains(.portable))
        XCTAssertEqual(KernelTable.native.path, KernelPath.best(for: .current))
        #if arch(x86_64) && !DSV2_PORTABLE
        XCTAssertTrue(paths.contains(.avx2), "the x86-64-v3 build runs on AVX2 CPUs only")
        XCTAssertEqual(paths.contains(.avx512VNNI), CPUFeatures.current.isSuperset(of: KernelPath.avx512VNNI.requirements))
        XCTAssertEqual(paths.contains(.avxVNNI), CPUFeatures.current.contains(.avxVNNI))
        #else
        XCTAssertEqual(paths, [.portable], "a portable build has only the portable kernels")
        #endif
        print("kernel paths on this CPU (\(CPUFeatures.current)): \(paths.map(\.rawValue)); native: \(KernelTable.native.path.rawValue)")
    }

    /// The path chosen for a CPU, from fake feature sets.
    func testPathChoiceFromFeatures() {
        let v3: CPUFeatures = [.avx2, .fma, .f16c, .osAVX]
        let avx512: CPUFeatures = [.avx512f, .avx512bw, .avx512vl, .avx512VNNI, .osAVX512]
        #if arch(x86_64) && !DSV2_PORTABLE
        XCTAssertEqual(KernelPath.best(for: []), .portable)
        XCTAssertEqual(KernelPath.best(for: v3), .avx2)
        XCTAssertEqual(KernelPath.best(for: v3.subtracting(.osAVX)), .portable, "no ymm state saved by the OS")
        XCTAssertEqual(KernelPath.best(for: v3.union(.avxVNNI)), .avxVNNI)
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512)), .avx512VNNI, "Zen 4, Ice Lake: EVEX vpdpbusd")
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512).union(.avxVNNI)), .avx512VNNI, "both: 32 registers")
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512).subtracting(.avx512vl)), .avx2, "ymm vpdpbusd needs VL")
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512).subtracting(.osAVX512)), .avx2, "zmm state not saved")
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512).subtracting(.avx512VNNI).union(.avxVNNI)), .avxVNNI)
        XCTAssertNil(KernelTable(path: .avx512VNNI, features: v3), "no table for a path the CPU lacks")
        XCTAssertEqual(KernelTable(path: .avx2, features: v3)?.path, .avx2)
        #else
        XCTAssertEqual(KernelPath.best(for: v3.union(avx512).union(.avxVNNI)), .portable)
        XCTAssertNil(KernelTable(path: .avx2, features: v3), "a portable build has no AVX2 kernels")
        #endif
    }

    /// The x86 paths compute the same exact integer sums and then the same float operations in
    /// the same order: mat-vec and mat-mat results must be identical bit for bit to AVX2's (so a
    /// model's output does not depend on which of the CPUs ran it). Mat-mat uses each path's
    /// micro-kernels (4, 6 and 8 tokens) and singles.
    func testX86PathsAreBitIdentical() throws {
        let paths = Self.paths.filter { $0.path != .portable }
        guard let avx2 = paths.first(where: { $0.path == .avx2 }), paths.count > 1 else {
            throw XCTSkip("fewer than two x86 kernel paths in this build on this CPU (AVX2 alone, or a portable build)")
        }
        var random = SplitMix64(seed: 50)
        for type in [WeightType.q8, .q4] {
            for columns in Self.columns {
                let rows = columns >= 5120 ? 3 : 7, tokens = 23  // 8 + 8 + 4 + 3, 6 + 6 + 6 + 4 + 1, ...
                let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
                let x = random.floats(tokens * columns, scale: 2)
                func products(_ kernels: KernelTable) -> (matvec: [UInt32], matmul: [UInt32]) {
                    let prepared = x.withUnsafeBufferPointer {
                        PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens, kernels: kernels)
                    }
                    var single = [Float](repeating: .nan, count: tokens * rows)
                    var multi = [Float](repeating: .nan, count: tokens * rows)
                    single.withUnsafeMutableBufferPointer { y in
                        for t in 0..<tokens { Kernels.matvec(w, prepared, token: t, into: y.baseAddress! + t * rows) }
                    }
                    multi.withUnsafeMutableBufferPointer { Kernels.matmul(w, prepared, into: $0.baseAddress!) }
                    return (single.map(\.bitPattern), multi.map(\.bitPattern))
                }
                let reference = products(avx2)
                for kernels in paths where kernels.path != .avx2 {
                    let result = products(kernels)
                    XCTAssertEqual(result.matvec, reference.matvec, "\(type) [\(rows), \(columns)] mat-vec \(kernels.path) ≠ AVX2")
                    XCTAssertEqual(result.matmul, reference.matmul, "\(type) [\(rows), \(columns)] mat-mat \(kernels.path) ≠ AVX2")
                }
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
    func checkIntegerDotProductsAreExact(_ kernels: KernelTable) {
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
                let y = kernelMatvec(matrix, x, kernels: kernels)
                for r in 0..<rows {
                    var exact = 0
                    for c in 0..<columns { exact += Int(w[r * columns + c]) * Int(x[c]) }
                    XCTAssertEqual(y[r], Float(exact), "\(kernels.path) \(type) [\(rows), \(columns)] row \(r)")
                }
            }
        }
    }

    /// Mat-mat runs the same operations per token as mat-vec: it must equal mat-vec bit for bit.
    func checkMatmulEqualsMatvecPerToken(_ kernels: KernelTable) {
        var random = SplitMix64(seed: 30)
        for type in WeightType.allCases {
            for (rows, columns) in [(37, 96), (64, 2048), (9, 100)] {
                // 19 = 4·4 + 3 singles (four-token micro-kernels), 6 + 6 + 4 + 3 (q8 on AVX-VNNI),
                // 8 + 8 + 3 (AVX-512 VNNI).
                let tokens = 19
                let w = makeMatrix(random.floats(rows * columns, scale: 0.1), rows: rows, columns: columns, type)
                let x = random.floats(tokens * columns)
                let prepared = x.withUnsafeBufferPointer {
                    PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens, kernels: kernels)
                }
                var y = [Float](repeating: .nan, count: tokens * rows)
                y.withUnsafeMutableBufferPointer { Kernels.matmul(w, prepared, into: $0.baseAddress!) }
                for t in 0..<tokens {
                    let single = kernelMatvec(w, Array(x[(t * columns)..<((t + 1) * columns)]), kernels: kernels)
                    XCTAssertEqual(Array(y[(t * rows)..<((t + 1) * rows)]), single,
                                   "\(kernels.path) \(type) [\(rows), \(columns)] token \(t)")
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
