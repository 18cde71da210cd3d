import DSV2Quantized
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// `dsv2 dump --engine quantized` end to end: the same tensor names as the golden files (and the
/// reference's dump), values from the quantized engine, and a clear error for a bad preset.
final class EngineDumpTests: XCTestCase {
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = Fixtures.dsv2Binary
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    func testQuantizedDumpWritesTheGoldenNames() throws {
        guard FileManager.default.isExecutableFile(atPath: Fixtures.dsv2Binary.path) else {
            throw XCTSkip("build the dsv2 binary first (make test does)")
        }
        let fixture = Fixtures.url("lite-greedy")
        let golden = try SafetensorsFile(url: fixture.appendingPathComponent("golden.safetensors"))
        let ids = try golden.int32s("input_ids")
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("engine-dump-\(UUID().uuidString).safetensors")
        defer { try? FileManager.default.removeItem(at: out) }
        let result = try run(["dump", "--model", fixture.path, "--engine", "quantized", "--quant", "f32", "--threads", "2",
                              "--ids", ids.map(String.init).joined(separator: ","), "-n", "8", "-o", out.path])
        XCTAssertEqual(result.status, 0, result.output)
        let dump = try SafetensorsFile(url: out)
        let expectedNames = Set(golden.tensorNames).subtracting(["__metadata__"])
        XCTAssertEqual(Set(dump.tensorNames), expectedNames, "dump names differ from the golden file's")
        // f32 weights through the f16 cache: within the f16-cache bound of EngineGoldenTests.
        XCTAssertLessThanOrEqual(engineRelativeError(try dump.floats("logits"), try golden.floats("logits")),
                                 EngineGoldenTests.f16CacheTolerance)
        XCTAssertEqual(try dump.int32s("generated_ids"), try golden.int32s("generated_ids"))

        let bad = try run(["dump", "--model", fixture.path, "--engine", "quantized", "--quant", "q9", "--ids", "1", "-o", out.path])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("q9"), bad.output)
    }
}
