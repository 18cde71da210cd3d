import DSV2Core
import Foundation
import TestSupport
import XCTest

/// `dsv2 dump --engine quantized` end to end: the same tensor names as the golden files (and the
/// reference's dump), values from the quantized engine, and a clear error for a bad preset.
final class EngineDumpTests: XCTestCase {
    /// Exit status and stdout + stderr of the built binary.
    private func run(_ arguments: [String]) throws -> (status: Int32, output: String) {
        let result = try DSV2Process.run(arguments)
        return (result.status, result.stdout + result.stderr)
    }

    func testQuantizedDumpWritesTheGoldenNames() throws {
        let fixture = Fixtures.url("lite-greedy")
        let golden = try SafetensorsFile(url: fixture.appendingPathComponent("golden.safetensors"))
        let ids = try golden.int32s("input_ids")
        let scratch = TemporaryDirectory(prefix: "engine-dump")
        let out = scratch.file("dump.safetensors")
        let result = try run(["dump", "--model", fixture.path, "--engine", "quantized", "--quant", "f32", "--threads", "2",
                              "--ids", ids.map(String.init).joined(separator: ","), "-n", "8", "-o", out.path])
        XCTAssertEqual(result.status, 0, result.output)
        let dump = try SafetensorsFile(url: out)
        let expectedNames = Set(golden.tensorNames).subtracting(["__metadata__"])
        XCTAssertEqual(Set(dump.tensorNames), expectedNames, "dump names differ from the golden file's")
        // f32 weights through the f16 cache: within the f16-cache bound of EngineGoldenTests.
        XCTAssertLessThanOrEqual(relativeError(try dump.floats("logits"), try golden.floats("logits")),
                                 GoldenTolerance.f16Cache)
        XCTAssertEqual(try dump.int32s("generated_ids"), try golden.int32s("generated_ids"))

        let bad = try run(["dump", "--model", fixture.path, "--engine", "quantized", "--quant", "q9", "--ids", "1", "-o", out.path, "--force"])
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.output.contains("q9"), bad.output)
    }
}
