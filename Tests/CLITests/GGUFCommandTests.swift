import DSV2Container
import Foundation
import TestSupport
import XCTest

/// `dsv2 export`, `convert` of a .gguf and `inspect` of a .gguf, run as the built binary.
final class GGUFCommandTests: XCTestCase {
    func run(_ arguments: [String]) throws -> DSV2Process.Result { try DSV2Process.run(arguments) }

    func testExportInspectConvertBack() throws {
        let folder = TemporaryDirectory()
        let q4 = folder.file("tiny-q4.dsv2").path, gguf = folder.file("tiny-q4.gguf").path, back = folder.file("back.dsv2").path
        var result = try run(["convert", Fixtures.url("tiny-dsv2").path, "-o", q4, "--quant", "q4", "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try run(["export", q4, "-o", gguf, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        result = try run(["export", q4, "-o", gguf, "--quiet"])
        XCTAssertNotEqual(result.status, 0, "overwrote without --force")
        XCTAssertTrue(result.stderr.contains("--force"), result.stderr)

        result = try run(["inspect", gguf])
        XCTAssertEqual(result.status, 0, result.stderr)
        for text in ["GGUF v3", "5 layers", "deepseek2.attention.kv_lora_rank = 64", "blk.0.attn_v_b.weight", "Q4_0", "tokenizer.ggml.pre = \"deepseek-llm\""] {
            XCTAssertTrue(result.stdout.contains(text), "inspect lacks \(text):\n\(result.stdout)")
        }

        // As stored: Q4_0 → q4, Q8_0 → q8, F32 → f32; the same tensors as the q4 container.
        result = try run(["convert", gguf, "-o", back, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let original = try ContainerReader(path: q4), imported = try ContainerReader(path: back)
        XCTAssertEqual(imported.metadata.provenance.sourceFormat, "gguf")
        XCTAssertEqual(imported.tensorNames, original.tensorNames)
        for name in original.tensorNames where !name.hasSuffix("kv_b_proj.weight") {
            XCTAssertEqual(imported.entry(name)?.type, original.entry(name)?.type, name)
            XCTAssertEqual(imported.entry(name)?.checksum, original.entry(name)?.checksum, name)
        }
    }

    func testConvertNeedsQuantExceptForGGUF() throws {
        let folder = TemporaryDirectory()
        let result = try run(["convert", Fixtures.url("tiny-dsv2").path, "-o", folder.file("x.dsv2").path])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--quant is required"), result.stderr)
    }

    func testBadGGUFIsANamedError() throws {
        let folder = TemporaryDirectory()
        var bytes = try Data(contentsOf: Fixtures.url("gguf/lite-greedy-q8_0.gguf"))
        bytes = bytes.prefix(bytes.count - 1000)
        let path = folder.file("cut.gguf")
        try bytes.write(to: path)
        let result = try run(["convert", path.path, "-o", folder.file("x.dsv2").path, "--quiet"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("cut.gguf") && result.stderr.contains("beyond the end of the file"), result.stderr)
    }
}
