import XCTest
import DSV2Core
import TestSupport
import DSV2Formats
import DSV2Kernels

/// Round-trip bounds of the normative scalar quantization (the spec the kernels are tested
/// against) and the layout arithmetic of `WeightType`.
final class KernelQuantizationTests: XCTestCase {
    let columnsToTry = [1, 7, 31, 32, 33, 48, 96, 100, 1408, 2048]

    func testQ8RoundTripWithinHalfStep() {
        var random = SplitMix64(seed: 1)
        for columns in columnsToTry {
            let rows = 3
            let x = random.floats(rows * columns, scale: 0.05)
            let w = makeMatrix(x, rows: rows, columns: columns, .q8)
            for r in 0..<rows {
                var back = [Float](repeating: 0, count: columns)
                back.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                for start in stride(from: 0, to: columns, by: 32) {
                    let block = x[(r * columns + start)..<(r * columns + min(columns, start + 32))]
                    let amax = block.map(abs).max()!
                    // d = f16(amax / 127); rounding to nearest gives |x − d·q| ≤ d/2. The slack
                    // covers the f16 rounding of d (x/d may exceed 127 by ≤ 2^-11 relative).
                    let d = Float(Float16(amax / 127))
                    for (j, v) in block.enumerated() {
                        XCTAssertLessThanOrEqual(abs(v - back[start + j]), d / 2 * 1.0001 + 1e-12,
                                                 "q8 [\(rows), \(columns)] row \(r) column \(start + j)")
                    }
                }
            }
        }
    }

    /// q4 picks the scale per block that minimizes the squared error (FORMAT.md "q4 block"):
    /// each value is within half a step of its reconstruction unless it lies beyond the codes'
    /// range [−8d, 7d] (then it is clamped to the nearer end), and every block's squared error is
    /// at most GGML Q4_0's (d = m/−8 is one of the candidates; 1e-5 relative slack for the Float
    /// evaluation of the score). Over all blocks the error must be clearly below Q4_0's (the
    /// search gains ≈ 10% on Gaussian blocks; ≥ 5% is asserted).
    func testQ4RoundTripErrorMinimizingScale() {
        var random = SplitMix64(seed: 2)
        var total = 0.0, totalQ4_0 = 0.0
        for columns in columnsToTry {
            let rows = 3
            let x = random.floats(rows * columns, scale: 0.05)
            let w = makeMatrix(x, rows: rows, columns: columns, .q4)
            for r in 0..<rows {
                var back = [Float](repeating: 0, count: columns)
                back.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                for start in stride(from: 0, to: columns, by: 32) {
                    let block = Array(x[(r * columns + start)..<(r * columns + min(columns, start + 32))])
                    let reconstructed = Array(back[start..<(start + block.count)])
                    let signed = Float(w.scales.assumingMemoryBound(to: Float16.self)[r * w.blocksPerRow + start / 32])
                    let d = abs(signed)
                    var blockError = 0.0
                    for (j, v) in block.enumerated() {
                        let error = abs(v - reconstructed[j])
                        blockError += Double(error) * Double(error)
                        let low = -8 * signed, high = 7 * signed // the codes' range (d has m's opposite sign)
                        let beyond = max(0, max(min(low, high) - v, v - max(low, high)))
                        XCTAssertLessThanOrEqual(error, max(d / 2 * 1.0001, beyond * 1.0001 + d / 2) + 1e-12,
                                                 "q4 [\(rows), \(columns)] row \(r) column \(start + j)")
                    }
                    // GGML Q4_0 on the same block.
                    let m = block.max(by: { abs($0) < abs($1) })!
                    let d0 = Float(Float16(m / -8)), inverse0: Float = d0 != 0 ? 1 / d0 : 0
                    var blockError0 = 0.0
                    for v in block {
                        let q = max(-8, min(7, (v * inverse0).rounded(.toNearestOrAwayFromZero)))
                        blockError0 += Double(v - d0 * q) * Double(v - d0 * q)
                    }
                    XCTAssertLessThanOrEqual(blockError, blockError0 * (1 + 1e-5) + 1e-14,
                                             "q4 [\(rows), \(columns)] row \(r) block \(start / 32): worse than Q4_0")
                    total += blockError
                    totalQ4_0 += blockError0
                }
            }
        }
        XCTAssertLessThan(total, 0.95 * totalQ4_0, "the scale search gains over Q4_0 (\(total / totalQ4_0))")
    }

    func testFloatTypesRoundTrip() {
        var random = SplitMix64(seed: 3)
        let x = random.floats(1000, scale: 3)
        for (type, relative) in [(WeightType.f32, Float(0)), (.f16, 1 / 2048), (.bf16, 1 / 256)] {
            let w = makeMatrix(x, rows: 10, columns: 100, type)
            for r in 0..<10 {
                var back = [Float](repeating: 0, count: 100)
                back.withUnsafeMutableBufferPointer { w.dequantizeRow(r, into: $0.baseAddress!) }
                for c in 0..<100 {
                    // Round to nearest: relative error ≤ 2^-(mantissa bits + 1).
                    XCTAssertLessThanOrEqual(abs(back[c] - x[r * 100 + c]), abs(x[r * 100 + c]) * relative + 3e-8, // + half the f16 subnormal step
                                             "\(type) row \(r) column \(c)")
                }
            }
        }
    }

    func testActivationQuantizationWithinHalfStep() {
        var random = SplitMix64(seed: 4)
        let x = random.floats(100, scale: 10)
        let back = quantizedActivations(x)
        for start in stride(from: 0, to: 100, by: 32) {
            let block = x[start..<min(100, start + 32)]
            let d = block.map(abs).max()! / 127
            for j in block.indices {
                XCTAssertLessThanOrEqual(abs(Double(x[j]) - back[j]), Double(d) / 2 * 1.0001)
            }
        }
    }

    func testLayoutSizes() {
        // [rows, columns] = [3, 100]: 4 blocks per row (last one padded), 12 blocks.
        XCTAssertEqual(WeightType.blocksPerRow(100), 4)
        XCTAssertEqual(WeightType.q8.byteCount(rows: 3, columns: 100), 384 + 24)
        XCTAssertEqual(WeightType.q4.scalesOffset(rows: 3, columns: 100), 192)
        XCTAssertEqual(WeightType.q4.byteCount(rows: 3, columns: 100), 192 + 24)
        XCTAssertEqual(WeightType.q4.scalesOffset(rows: 1, columns: 32), 64, "scales start 64-byte aligned")
        XCTAssertEqual(WeightType.bf16.byteCount(rows: 3, columns: 100), 600)
    }

    func testMatrixRejectsWrongByteCount() {
        let buffer = AlignedBuffer(byteCount: 100)
        XCTAssertThrowsError(try QuantizedMatrix(type: .q8, rows: 3, columns: 100, data: buffer.pointer,
                                                 byteCount: 100, owner: buffer, name: "blk.0.w")) { error in
            XCTAssertTrue("\(error)".contains("blk.0.w"), "the error names the tensor: \(error)")
        }
        XCTAssertEqual(Int(bitPattern: AlignedBuffer(byteCount: 10, alignment: 4096).pointer) % 4096, 0)
    }
}
