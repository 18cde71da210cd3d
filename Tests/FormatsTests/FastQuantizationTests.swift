import XCTest
import DSV2Formats
import DSV2Core
import TestSupport

/// `TensorConversion.convert` (the SIMD quantizer of the converter and of in-memory loading) must
/// give the bytes of the normative `ScalarQuantization.quantize`, bit for bit, on any input the
/// spec accepts; and reject non-finite weights with an error naming the tensor.
final class FastQuantizationTests: XCTestCase {
    /// Converts `values` ([rows, columns] f32) to `type` through the fast path.
    func fast(_ values: [Float], rows: Int, columns: Int, _ type: WeightType, name: String = "w") throws -> [UInt8] {
        let buffer = AlignedBuffer(byteCount: values.count * 4)
        values.withUnsafeBytes { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
        let tensor = StoredTensor(name: name, type: .f32, shape: [rows, columns], bytes: buffer.bytes, owner: buffer)
        let converted = try TensorConversion.convert(tensor, to: type, threads: 2)
        return Array(converted.bytes)
    }

    func scalar(_ values: [Float], rows: Int, columns: Int, _ type: WeightType) -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: type.byteCount(rows: rows, columns: columns))
        values.withUnsafeBufferPointer { v in
            bytes.withUnsafeMutableBytes {
                ScalarQuantization.quantize(v.baseAddress!, rows: rows, columns: columns, as: type, into: $0.baseAddress!)
            }
        }
        return bytes
    }

    func assertIdentical(_ values: [Float], rows: Int, columns: Int, _ what: String,
                         file: StaticString = #filePath, line: UInt = #line) throws {
        for type in [WeightType.q8, .q4] {
            let a = try fast(values, rows: rows, columns: columns, type)
            let b = scalar(values, rows: rows, columns: columns, type)
            if let i = a.indices.first(where: { a[$0] != b[$0] }) {
                XCTFail("\(type) \(what) [\(rows), \(columns)]: byte \(i) differs (fast \(a[i]), spec \(b[i]))",
                        file: file, line: line)
            }
        }
    }

    func testRandomRowsOfManyLengths() throws {
        var random = SplitMix64(seed: 11)
        for columns in [1, 5, 16, 31, 32, 33, 48, 63, 64, 96, 100, 257, 1408] {
            let rows = columns > 300 ? 3 : 7
            let scale: Float = [0.02, 1, 3e3][columns % 3]
            try assertIdentical(random.floats(rows * columns, scale: scale), rows: rows, columns: columns, "random")
        }
    }

    /// Values on exact rounding ties (x/d = k + ½ for the scale the search picks), repeated
    /// magnitudes of both signs (which one is m), zeros, subnormals, huge and tiny scales.
    func testTiesZerosSubnormalsAndExtremes() throws {
        var random = SplitMix64(seed: 12)
        var cases: [(String, [Float])] = []
        cases.append(("zeros", [Float](repeating: 0, count: 64)))
        cases.append(("signed zeros", (0..<64).map { $0 % 2 == 0 ? 0 : -0.0 }))
        // Half-integers times powers of two: many exact ties for q8 (d = 8/127 ≈ …) and q4.
        cases.append(("half steps", (0..<64).map { Float(($0 % 17) - 8) * 0.5 }))
        cases.append(("quarter steps", (0..<64).map { Float(($0 % 33) - 16) * 0.25 }))
        cases.append(("±max ties", (0..<64).map { j in j % 5 == 0 ? (j % 2 == 0 ? 2 : -2) : random.float() }))
        // Exact ties: q8 with max 127 has d = 1; q4 with m = −8 has the Q4_0 candidate d = 1.
        cases.append(("q8 ties", (0..<64).map { $0 % 8 == 0 ? 127 : Float($0 % 16) - 7.5 }))
        cases.append(("q4 ties", (0..<64).map { $0 % 32 == 3 ? -8 : Float($0 % 15) - 7.5 }))
        cases.append(("one value", (0..<64).map { $0 == 37 ? -3 : 0 }))
        cases.append(("subnormals", (0..<64).map { _ in random.float() * Float.leastNormalMagnitude }))
        cases.append(("tiny normals", (0..<64).map { _ in random.float() * 1e-6 }))
        cases.append(("f16-subnormal scales", (0..<64).map { _ in random.float() * 1e-4 }))
        cases.append(("huge", (0..<64).map { _ in random.float() * 5e5 }))
        cases.append(("integers", (0..<64).map { _ in Float(random.int(-9...9)) }))
        for (what, values) in cases {
            try assertIdentical(values, rows: 2, columns: 32, what)
            try assertIdentical(values, rows: 1, columns: 64, what)
            try assertIdentical(Array(values.prefix(40)), rows: 1, columns: 40, what)
        }
    }

    func testNonFiniteWeightIsANamedError() throws {
        for bad in [Float.nan, .infinity, -.infinity] {
            var values = [Float](repeating: 0.5, count: 3 * 40)
            values[1 * 40 + 35] = bad
            for type in [WeightType.q8, .q4, .f16, .bf16] { // (f32 → f32 is passed through untouched)
                XCTAssertThrowsError(try fast(values, rows: 3, columns: 40, type, name: "blk.2.w")) { error in
                    XCTAssertEqual(error as? TensorConversionError,
                                   .nonFinite(tensor: "blk.2.w", row: 1, column: 35), "\(type) \(bad)")
                    XCTAssertTrue("\(error)".contains("blk.2.w"))
                }
            }
        }
    }

    func testValuesBeyondTheScaleRangeAreANamedError() throws {
        var values = [Float](repeating: 1, count: 64)
        values[40] = 5e6  // q4: 5e6 / 9.5 > 65504; q8 still fits (≤ 65504·127)
        XCTAssertThrowsError(try fast(values, rows: 1, columns: 64, .q4, name: "big")) { error in
            XCTAssertEqual(error as? TensorConversionError, .scaleOverflow(tensor: "big", type: .q4, row: 0, column: 32))
        }
        XCTAssertNoThrow(try fast(values, rows: 1, columns: 64, .q8))
        XCTAssertThrowsError(try fast(values, rows: 1, columns: 64, .f16, name: "big"))
    }

    func testConversionToFloatTypesFlushesSubnormals() throws {
        let values: [Float] = [Float(bitPattern: 0x0001_16C2), -Float(bitPattern: 0x0001_16C2), 0.5, -2, Float.leastNormalMagnitude]   // ±1e-40: subnormal
        let bf16 = try fast(values, rows: 1, columns: 5, .bf16).withUnsafeBytes { Array($0.bindMemory(to: UInt16.self)) }
        XCTAssertEqual(bf16, [0, 0x8000, 0x3F00, 0xC000, 0x0080], "subnormals become signed zeros, the rest rounds")
    }
}
