import DSV2Formats
import DSV2GGUF
import Foundation
import TestSupport
import XCTest

/// The scalar block definitions against an independent implementation: gguf-py's `gguf.quants`
/// dequantized random blocks of every type (scripts/gguf-fixtures.py, committed as
/// Tests/Fixtures/gguf/blocks.gguf). Every value must be bit-identical: both follow ggml's
/// float operations in the same order.
final class GGUFBlockTests: XCTestCase {
    static let readTypes: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K]

    func testEveryReadableTypeMatchesGGUFPy() throws {
        let file = try GGUFFile(path: Fixtures.url("gguf/blocks.gguf").path)
        for type in Self.readTypes {
            let name = type.description   // gguf-py's names too: Q4_0, Q2_K, …
            guard let blocks = file.tensor("\(name).blocks"), let values = file.tensor("\(name).values") else {
                return XCTFail("blocks.gguf lacks \(name)")
            }
            XCTAssertEqual(blocks.type, type)
            let ours = try GGMLBlocks.dequantize(file.bytes(of: blocks), type: type, count: blocks.elementCount)
            let theirs = try GGMLBlocks.dequantize(file.bytes(of: values), type: .f32, count: values.elementCount)
            XCTAssertEqual(ours.count, theirs.count, "\(type)")
            XCTAssertGreaterThanOrEqual(ours.count, 2048, "\(type): enough values to cover every field")
            let mismatches = zip(ours, theirs).filter { $0.bitPattern != $1.bitPattern }.count
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) of \(ours.count) values differ from gguf-py's")
        }
    }

    /// Q8_0/Q4_0 ↔ q8/q4 moves bytes only: the planar tensor dequantizes (with the normative
    /// `ScalarQuantization`) to exactly ggml's values, and converting back gives the same bytes.
    func testQ8AndQ4ConvertLosslessly() throws {
        let file = try GGUFFile(path: Fixtures.url("gguf/blocks.gguf").path)
        for (name, ggml, planar) in [("Q8_0", GGMLType.q8_0, WeightType.q8), ("Q4_0", .q4_0, .q4)] {
            let info = try XCTUnwrap(file.tensor("\(name).blocks"))
            let bytes = file.bytes(of: info)
            let rows = 4, columns = info.elementCount / rows
            let planes = AlignedBuffer(byteCount: planar.byteCount(rows: rows, columns: columns))
            GGMLBlocks.toPlanes(bytes, type: planar, rows: rows, columns: columns, into: planes.pointer)
            var values = [Float](repeating: 0, count: rows * columns)
            ScalarQuantization.dequantize(planes.pointer, rows: rows, columns: columns, as: planar, into: &values)
            let reference = try GGMLBlocks.dequantize(bytes, type: ggml, count: info.elementCount)
            XCTAssertEqual(values.map(\.bitPattern), reference.map(\.bitPattern), name)
            var back = [UInt8](repeating: 0, count: bytes.count)
            GGMLBlocks.fromPlanes(planes.pointer, type: planar, rows: rows, columns: columns, into: &back)
            XCTAssertEqual(back, Array(bytes), name)
        }
    }
}
