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

    /// A .gguf is a model like any other: `generate` and `dump` open it directly (Model.open),
    /// with Q4_0 run in place as q4, so the tokens and logits equal the q4 container's.
    func testGGUFRunsDirectlyLikeTheContainer() throws {
        let folder = TemporaryDirectory()
        let q4 = folder.file("tiny-q4.dsv2").path, gguf = folder.file("tiny-q4.gguf").path
        XCTAssertEqual(try run(["convert", Fixtures.url("tiny-dsv2").path, "-o", q4, "--quant", "q4", "--quiet"]).status, 0)
        XCTAssertEqual(try run(["export", q4, "-o", gguf, "--quiet"]).status, 0)
        let generate = ["generate", "--prompt", "Once upon a time", "-n", "24", "--temp", "0", "--json"]
        let fromGGUF = try run(generate + ["--model", gguf]), fromContainer = try run(generate + ["--model", q4])
        XCTAssertEqual(fromGGUF.status, 0, fromGGUF.stderr)
        let ids = { (json: String) in json.components(separatedBy: "\"generated_ids\":").dropFirst().first?.components(separatedBy: "]").first }
        XCTAssertNotNil(ids(fromGGUF.stdout))
        XCTAssertEqual(ids(fromGGUF.stdout), ids(fromContainer.stdout))
        let a = folder.file("a.safetensors").path, b = folder.file("b.safetensors").path
        XCTAssertEqual(try run(["dump", "--model", gguf, "--engine", "quantized", "--ids", "1,2,3,4", "-o", a]).status, 0)
        XCTAssertEqual(try run(["dump", "--model", q4, "--engine", "quantized", "--ids", "1,2,3,4", "-o", b]).status, 0)
        let compare = try run(["compare", a, b, "--fail-above", "logits:maxabs>0,hidden.*:maxabs>0"])
        XCTAssertEqual(compare.status, 0, compare.stdout + compare.stderr)
        // Requantizing the Q4_0 tensors needs the flag.
        let requantize = try run(["generate", "--model", gguf, "--quant", "q8", "--prompt", "hi", "-n", "1"])
        XCTAssertNotEqual(requantize.status, 0)
        XCTAssertTrue(requantize.stderr.contains("--allow-requantize"), requantize.stderr)
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
