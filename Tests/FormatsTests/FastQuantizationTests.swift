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
            for type in [WeightType.q8, .q4, .f16, .bf16, .f32] { // f32 → f32 is passed through, checked
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

    /// A tensor passed through unchanged (same type) is checked too: `convert --quant bf16` of a
    /// bf16 checkpoint used to copy a NaN into the container.
    func testPassedThroughTensorsAreChecked() throws {
        for type in WeightType.allCases {
            let source = StoredTensor.damaged(rows: 4, columns: 70, as: type, bad: nil, name: "ok")
            XCTAssertNoThrow(try TensorConversion.convert(source, to: type))
            // Infinity: 0x7C00 in f16 (and q8/q4 scales), 0x7F80 in bf16 (f32: its top half).
            let bits: UInt16 = type == .f16 || type.isQuantized ? 0x7C00 : 0x7F80
            let bad = StoredTensor.damaged(rows: 4, columns: 70, as: type, bad: (2, 66), badBits: bits, name: "model.bad.weight")
            // q8/q4: their integers are always finite; the error names the bad scale's block.
            let column = type.isQuantized ? 64 : 66
            XCTAssertThrowsError(try TensorConversion.convert(bad, to: type)) { error in
                XCTAssertEqual(error as? TensorConversionError, .nonFinite(tensor: "model.bad.weight", row: 2, column: column), "\(type)")
            }
        }
    }

    /// `StoredTensor.firstNonFinite` by byte range: the pieces of a chunked pass find the same
    /// position as one call, and a range before the bad value finds nothing.
    func testFirstNonFiniteByByteRange() {
        for type in WeightType.allCases {
            let bits: UInt16 = type == .f16 || type.isQuantized ? 0x7E00 : 0x7FC0   // a NaN of that width
            let tensor = StoredTensor.damaged(rows: 9, columns: 100, as: type, bad: (7, 40), badBits: bits, name: "t")
            let expected = (row: 7, column: type.isQuantized ? 32 : 40)
            XCTAssertEqual(tensor.firstNonFinite()?.row, expected.row, "\(type)")
            XCTAssertEqual(tensor.firstNonFinite()?.column, expected.column, "\(type)")
            for piece in [1, 2, 3, 64, 100] {
                var found: (row: Int, column: Int)?
                var start = 0
                while start < tensor.bytes.count, found == nil {
                    found = tensor.firstNonFinite(inByteRange: start..<min(start + piece, tensor.bytes.count))
                    start += piece
                }
                XCTAssertEqual(found?.row, expected.row, "\(type) piece \(piece)")
                XCTAssertEqual(found?.column, expected.column, "\(type) piece \(piece)")
            }
            XCTAssertNil(tensor.firstNonFinite(inByteRange: 0..<1))
        }
    }
}

extension StoredTensor {
    /// 0.25 everywhere, [rows, columns] stored as `type`, then damaged as a file could be: the
    /// value at `bad` (float types) or its block's scale (q8/q4) overwritten with `badBits` (a
    /// NaN or infinity of that width; f32 uses the bf16 bits widened).
    static func damaged(rows: Int, columns: Int, as type: WeightType, bad: (row: Int, column: Int)?, badBits: UInt16 = 0x7E00,
                        name: String) -> StoredTensor {
        let buffer = AlignedBuffer(byteCount: type.byteCount(rows: rows, columns: columns))
        let values = [Float](repeating: 0.25, count: rows * columns)
        values.withUnsafeBufferPointer {
            ScalarQuantization.quantize($0.baseAddress!, rows: rows, columns: columns, as: type, into: buffer.pointer)
        }
        if let (row, column) = bad {
            switch type {
            case .f32: buffer.pointer.storeBytes(of: UInt32(badBits) << 16, toByteOffset: (row * columns + column) * 4, as: UInt32.self)
            case .f16, .bf16: buffer.pointer.storeBytes(of: badBits, toByteOffset: (row * columns + column) * 2, as: UInt16.self)
            case .q8, .q4:
                let blocks = WeightType.blocksPerRow(columns)
                buffer.pointer.storeBytes(of: badBits, toByteOffset: type.scalesOffset(rows: rows, columns: columns)
                                          + (row * blocks + column / WeightType.blockSize) * 2, as: UInt16.self)
            }
        }
        return StoredTensor(name: name, type: type, shape: [rows, columns], bytes: buffer.bytes, owner: buffer)
    }
}
