import DSV2Core
import DSV2Formats
import DSV2Kernels
import Foundation
import TestSupport
import XCTest

/// The products of attention over the latent cache on every kernel path against their scalar
/// definition (bit for bit: each output is the same chain of fused multiply-adds), and the
/// block-split softmax (flash-decoding) against exact attention in Double.
final class LatentAttentionTests: XCTestCase {
    /// Shapes with the corner cases: padded head lanes (4 of 16, 20 of 32), a rank that is not
    /// a multiple of 16 (column tail), short row blocks (1, 3, 9 rows), V2-Lite's 16 × 576.
    static let shapes: [(heads: Int, rank: Int, rope: Int, rows: Int)] = [
        (4, 32, 16, 9), (16, 512, 64, 70), (20, 40, 8, 3), (16, 64, 64, 1), (2, 17, 3, 13),
    ]

    /// Every table this CPU can run, plus the AVX-512 one without AVX-512 BF16 (its Swift bf16
    /// products) where the CPU has it.
    static var tables: [KernelTable] {
        var tables = KernelTable.runnable
        if CPUFeatures.current.contains(.avx512BF16),
           let withoutBF16 = KernelTable(path: .avx512VNNI, features: CPUFeatures.current.subtracting(.avx512BF16)) {
            tables.append(withoutBF16)
        }
        return tables
    }

    /// Exact products equal the definition bit for bit. vdpbf16ps rounds the query (scores) or
    /// the weights (weighted sum) to bf16 — relative error ≤ 2⁻⁸, bf16's unit roundoff — and adds
    /// two exact products per step: within (2⁻⁸ + γ_n)·Σ|terms| of the definition (γ_n = n·u/(1 − n·u),
    /// u = 2⁻²⁴, n the chain length; for the weighted sum the initial context counts as a term).
    func testProductsMatchTheirDefinitionOnEveryPath() throws {
        var random = SplitMix64(seed: 41)
        let u = Double(Float.ulpOfOne) / 2
        func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }
        for table in Self.tables {
            for type in [WeightType.f16, .bf16, .f32] {
                let products = table.latentAttention(type)
                var worst = 0.0
                for shape in Self.shapes {
                    let lanes = LatentAttentionKernels.lanes(heads: shape.heads), width = shape.rank + shape.rope
                    let rows = CacheRows(type: type, count: shape.rows, width: width, random: &random)
                    var qT = [Float](repeating: 0, count: width * lanes)
                    for c in 0..<width { for h in 0..<shape.heads { qT[c * lanes + h] = Float.random(in: -1...1, using: &random) } }
                    var scratch = [Float](repeating: .nan, count: LatentAttentionProducts.scratchFloats(width: width, lanes: lanes))
                    // Scores.
                    var expected = [Float](repeating: .nan, count: shape.rows * lanes), actual = expected
                    rows.withBase { base in
                        LatentAttentionKernels.Spec.scores(type: type, qT, lanes: lanes, rows: base, rowBytes: rows.rowBytes,
                                                           count: shape.rows, width: width, into: &expected)
                        products.scores(qT, lanes, base, rows.rowBytes, shape.rows, width, &scratch, &actual)
                    }
                    if products.exact {
                        XCTAssertTrue(bitIdentical(actual, expected), "\(table.path) \(products.name) scores \(shape)")
                    } else {
                        for j in 0..<shape.rows {
                            for h in 0..<lanes {
                                var terms = 0.0
                                for c in 0..<width { terms += abs(Double(qT[c * lanes + h]) * Double(rows.value(j, c))) }
                                let error = abs(Double(actual[j * lanes + h]) - Double(expected[j * lanes + h]))
                                let bound = (0x1p-8 + 2 * gamma(width)) * terms
                                worst = max(worst, error / max(bound, .leastNormalMagnitude))
                                XCTAssertLessThanOrEqual(error, bound, "\(table.path) \(products.name) score \(j), \(h) of \(shape)")
                            }
                        }
                    }
                    // Weighted sum, added to a context that already holds values.
                    var p = [Float](repeating: 0, count: shape.rows * lanes)
                    for i in p.indices { p[i] = Float.random(in: 0...1, using: &random) }
                    let start = (0..<shape.heads * shape.rank).map { _ in Float.random(in: -1...1, using: &random) }
                    var context = start, sum = start
                    rows.withBase { base in
                        LatentAttentionKernels.Spec.weightedSum(type: type, p, lanes: lanes, heads: shape.heads, rows: base,
                                                                rowBytes: rows.rowBytes, count: shape.rows, rank: shape.rank,
                                                                into: &context)
                        products.weightedSum(p, lanes, shape.heads, base, rows.rowBytes, shape.rows, shape.rank, &scratch, &sum)
                    }
                    if products.exact {
                        XCTAssertTrue(bitIdentical(sum, context), "\(table.path) \(products.name) weighted sum \(shape)")
                    } else {
                        for h in 0..<shape.heads {
                            for c in 0..<shape.rank {
                                var terms = abs(Double(start[h * shape.rank + c]))
                                for j in 0..<shape.rows { terms += abs(Double(p[j * lanes + h]) * Double(rows.value(j, c))) }
                                let error = abs(Double(sum[h * shape.rank + c]) - Double(context[h * shape.rank + c]))
                                let bound = (0x1p-8 + 2 * gamma(shape.rows + 1)) * terms
                                worst = max(worst, error / bound)
                                XCTAssertLessThanOrEqual(error, bound, "\(table.path) \(products.name) context \(h), \(c) of \(shape)")
                            }
                        }
                    }
                }
                print("[latent-products] \(table.path) \(products.name): "
                      + (products.exact ? "bit-identical to the definition" : String(format: "largest error %.2f of the bound", worst))
                      + " on \(Self.shapes.count) shapes")
            }
        }
    }

    /// Blocks and merge against softmax attention in Double, for single and multi-tile blocks.
    /// Bound per output element, as a multiple of max_j |c_j| (the output is a convex combination
    /// of the rows): the weights e^(s_j − m) are off by at most δ = γ_width·S + 4u relative (S the
    /// largest Σ_c |q_c·r_jc|, γ_n = n·u/(1 − n·u), u = 2⁻²⁴; 4u covers the exponential's 2 ulp, the
    /// scaled subtraction and the rescaling between tiles), which moves a normalised combination
    /// by at most 2δ; the weighted sums of each block and the merge add γ_rows + γ_blocks + 2u.
    func testBlocksAndMergeMatchExactAttention() throws {
        var random = SplitMix64(seed: 42)
        let products = KernelTable.native.latentAttention(.f32)
        for (heads, rank, rope, count, tile, scoreScale) in [(16, 64, 16, 300, 256, 0.2), (4, 32, 8, 200, 48, 1.0),
                                                               (16, 48, 16, 1, 256, 1.0), (3, 20, 4, 129, 16, 3.0)] {
            let shape = LatentAttention.Shape(heads: heads, rank: rank, width: rank + rope)
            let rows = CacheRows(type: .f32, count: count, width: shape.width, random: &random)
            var qT = [Float](repeating: 0, count: shape.queryFloats)
            for c in 0..<shape.width { for h in 0..<heads { qT[c * shape.lanes + h] = Float.random(in: -1...1, using: &random) * Float(scoreScale) } }
            let blockRows = LatentAttention.blockRows(visible: count), blocks = LatentAttention.blockCount(visible: count)
            var partials = [Float](repeating: .nan, count: blocks * shape.partialFloats)
            var scratch = [Float](repeating: 0, count: shape.scratchFloats)
            rows.withBase { base in
                for b in 0..<blocks {
                    partials.withUnsafeMutableBufferPointer { out in
                        LatentAttention.block(products, shape: shape, query: qT, rows: base, rowBytes: rows.rowBytes,
                                              range: b * blockRows ..< min(count, (b + 1) * blockRows), scratch: &scratch,
                                              into: out.baseAddress! + b * shape.partialFloats, tile: tile)
                    }
                }
            }
            let u = Double(Float.ulpOfOne) / 2
            func gamma(_ n: Int) -> Double { Double(n) * u / (1 - Double(n) * u) }
            var worst = 0.0
            for h in 0..<heads {
                var out = [Float](repeating: .nan, count: rank)
                LatentAttention.merge(shape: shape, partials: partials, blocks: blocks, head: h, into: &out)
                // Exact: softmax over s_j = Σ_c q_c r_jc in Double.
                var s = [Double](repeating: 0, count: count), magnitude = 0.0
                for j in 0..<count {
                    var terms = 0.0
                    for c in 0..<shape.width {
                        let term = Double(qT[c * shape.lanes + h]) * Double(rows.value(j, c))
                        s[j] += term
                        terms += abs(term)
                    }
                    magnitude = max(magnitude, terms)
                }
                let m = s.max()!, e = s.map { Foundation.exp($0 - m) }, total = e.reduce(0, +)
                let delta = gamma(shape.width) * magnitude + 4 * u
                let bound = 2 * delta + gamma(blockRows) + gamma(blocks) + 2 * u
                var largestRow = 0.0
                for j in 0..<count { for c in 0..<rank { largestRow = max(largestRow, abs(Double(rows.value(j, c)))) } }
                for c in 0..<rank {
                    var exact = 0.0
                    for j in 0..<count { exact += e[j] / total * Double(rows.value(j, c)) }
                    let error = abs(Double(out[c]) - exact) / largestRow
                    worst = max(worst, error / bound)
                    XCTAssertLessThanOrEqual(error, bound, "heads \(heads) rows \(count) tile \(tile) head \(h) column \(c)")
                }
            }
            print("[latent-blocks] \(count) rows in \(blocks) blocks of \(blockRows), tiles of \(tile): largest error "
                  + String(format: "%.2f", worst) + " of the bound")
        }
    }

    /// The partition depends only on the number of visible rows: at least 64 rows per block, a
    /// multiple of 64, at most 32 blocks, covering every row.
    func testBlockPartition() {
        for visible in [1, 63, 64, 65, 128, 2047, 2048, 2049, 4096, 10_000, 32_768, 163_840] {
            let rows = LatentAttention.blockRows(visible: visible), blocks = LatentAttention.blockCount(visible: visible)
            XCTAssertGreaterThanOrEqual(rows, LatentAttention.minimumBlockRows)
            XCTAssertEqual(rows % LatentAttention.minimumBlockRows, 0)
            XCTAssertLessThanOrEqual(blocks, LatentAttention.maximumBlocks)
            XCTAssertGreaterThanOrEqual(blocks * rows, visible)
            XCTAssertLessThan((blocks - 1) * rows, visible, "no empty block at \(visible)")
        }
    }
}

/// Random cache rows of `type` (values in ±2).
private struct CacheRows {
    let type: WeightType, count: Int, width: Int
    var bytes: [UInt8]
    var rowBytes: Int { width * (type == .f32 ? 4 : 2) }

    init(type: WeightType, count: Int, width: Int, random: inout SplitMix64) {
        self.type = type
        self.count = count
        self.width = width
        bytes = [UInt8](repeating: 0, count: count * width * (type == .f32 ? 4 : 2))
        bytes.withUnsafeMutableBytes { raw in
            for i in 0..<count * width {
                let v = Float.random(in: -2...2, using: &random)
                switch type {
                case .f16: raw.storeBytes(of: Float16(v), toByteOffset: i * 2, as: Float16.self)
                case .bf16: raw.storeBytes(of: ScalarQuantization.bfloat16Bits(v), toByteOffset: i * 2, as: UInt16.self)
                default: raw.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
                }
            }
        }
    }

    func withBase(_ body: (UnsafeRawPointer) -> Void) { bytes.withUnsafeBytes { body($0.baseAddress!) } }

    func value(_ row: Int, _ column: Int) -> Float {
        bytes.withUnsafeBytes { LatentAttentionKernels.Spec.element(type, $0.baseAddress! + row * rowBytes, column) }
    }
}

private func bitIdentical(_ a: [Float], _ b: [Float]) -> Bool {
    a.count == b.count && zip(a, b).allSatisfy { $0.bitPattern == $1.bitPattern }
}
