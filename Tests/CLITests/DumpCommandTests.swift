import DSV2Core
import Foundation
import TestSupport
import XCTest

/// `dsv2 dump` end to end through the built binary (`swift build -c release --product dsv2`).
final class DumpCommandTests: XCTestCase {
    private func dsv2(_ arguments: [String]) throws -> DSV2Process.Result { try DSV2Process.run(arguments) }

    /// The dump of a fixture's input reproduces its golden file (same names, shapes, values).
    func testDumpMatchesGolden() throws {
        let fixture = try GoldenCase("v2-grouped")
        let dir = TemporaryDirectory()
        let out = dir.file("dump.safetensors")
        let ids = try fixture.inputIds.map(String.init).joined(separator: ",")
        let generated = try fixture.generatedIds
        let run = try dsv2(["dump", "--model", fixture.folder.path, "--engine", "reference", "--ids", ids,
                            "-n", "\(generated.count)", "-o", out.path])
        XCTAssertEqual(run.status, 0, run.stderr)
        let dump = try SafetensorsFile(url: out)
        XCTAssertEqual(Set(dump.tensorNames), Set(fixture.golden.tensorNames), "dump holds the golden file's tensors")
        for name in fixture.golden.tensorNames {
            XCTAssertEqual(try dump.info(name).shape, try fixture.golden.info(name).shape, name)
            XCTAssertEqual(try dump.info(name).dtype, try fixture.golden.info(name).dtype, name)
        }
        XCTAssertEqual(try dump.int32s("generated_ids"), generated)
        XCTAssertEqual(try dump.int32s("input_ids"), try fixture.inputIds)
        for name in ["logits", "decode_logits", "final_norm", "hidden.4"] {
            XCTAssertLessThanOrEqual(relativeError(try dump.floats(name), try fixture.floats(name)), GoldenTolerance.fp32, name)
        }

        // --trace picks names by glob; absorbed MLA through --mla.
        let traced = dir.file("traced.safetensors")
        let run2 = try dsv2(["dump", "--model", fixture.folder.path, "--engine", "reference", "--ids", ids, "--mla", "absorbed",
                             "--trace", "kv_latent.*,moe.1", "-o", traced.path])
        XCTAssertEqual(run2.status, 0, run2.stderr)
        XCTAssertEqual(Set(try SafetensorsFile(url: traced).tensorNames),
                       ["input_ids", "kv_latent.0", "kv_latent.1", "kv_latent.2", "kv_latent.3", "moe.1"])
    }

    /// Bad inputs exit non-zero with the library's message on stderr and write nothing.
    func testDumpErrorsExitNonZeroWithTheMessage() throws {
        let dir = TemporaryDirectory()
        let source = Fixtures.url("lite-greedy")

        // A config with the misspelt original default topk_method.
        let badConfig = dir.file("bad-config")
        try FileManager.default.createDirectory(at: badConfig, withIntermediateDirectories: true)
        var json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as? [String: Any])
        json["topk_method"] = "gready"
        try JSONSerialization.data(withJSONObject: json).write(to: badConfig.appendingPathComponent("config.json"))
        try FileManager.default.copyItem(at: source.appendingPathComponent("model.safetensors"),
                                         to: badConfig.appendingPathComponent("model.safetensors"))

        // A truncated model.safetensors.
        let truncated = dir.file("truncated")
        try FileManager.default.createDirectory(at: truncated, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: truncated.appendingPathComponent("config.json"))
        let weights = try Data(contentsOf: source.appendingPathComponent("model.safetensors"))
        try weights.prefix(weights.count - 1000).write(to: truncated.appendingPathComponent("model.safetensors"))

        let cases: [(String, [String], [String])] = [
            ("bad topk_method", ["--model", badConfig.path, "--ids", "1,2"], ["topk_method", "gready", "config.json"]),
            ("truncated weights", ["--model", truncated.path, "--ids", "1,2"], ["model.safetensors", "past the end"]),
            ("token out of range", ["--model", source.path, "--ids", "1,512"], ["512", "vocabulary"]),
            ("bad id", ["--model", source.path, "--ids", "1,x"], ["\"x\""]),
            ("missing folder", ["--model", dir.file("nope").path, "--ids", "1"], ["nope"]),
        ]
        for (label, arguments, words) in cases {
            let out = dir.file("\(label).safetensors")
            let run = try dsv2(["dump", "--engine", "reference"] + arguments + ["-o", out.path])
            XCTAssertNotEqual(run.status, 0, label)
            for word in words { XCTAssertTrue(run.stderr.contains(word), "\(label): stderr \"\(run.stderr)\" lacks \(word)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: out.path), "\(label): wrote an output")
        }
    }
}
