import XCTest
import DSV2Text
import TestSupport
import DSV2Container

/// The `dsv2 convert / inspect / verify / unpack` commands, run as the built binary
/// (`swift build -c release --product dsv2`).
final class ConverterCLITests: XCTestCase {
    func run(_ arguments: [String], environment: [String: String] = [:]) throws -> DSV2Process.Result {
        try DSV2Process.run(arguments, environment: environment)
    }

    func testConvertInspectVerifyUnpack() throws {
        let folder = TemporaryDirectory()
        let packed = folder.file("tiny.dsv2").path
        var result = try run(["convert", Fixtures.url("tiny-dsv2").path, "-o", packed, "--quant", "q4-mixed", "--compress", "zstd"])
        XCTAssertEqual(result.status, 0, result.stderr)
        // Off a terminal no progress is drawn: only the summary line.
        XCTAssertTrue(result.stderr.hasPrefix("wrote \(packed): 249 tensors"), result.stderr)
        XCTAssertFalse(result.stderr.contains("\r"), result.stderr)
        // Refuses to overwrite without --force.
        result = try run(["convert", Fixtures.url("tiny-dsv2").path, "-o", packed, "--quant", "q8", "--quiet"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--force"), result.stderr)
        XCTAssertEqual(try ContainerReader(path: packed).metadata.quantization, "q4-mixed")

        result = try run(["verify", packed])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertTrue(result.stdout.contains("OK"))

        result = try run(["inspect", packed, "--json"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let report = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [String: Any]
        let metadata = report["metadata"] as! [String: Any]
        XCTAssertEqual((metadata["tensors"] as! [Any]).count, 249)
        XCTAssertEqual(metadata["quantization"] as? String, "q4-mixed")
        result = try run(["inspect", packed])
        XCTAssertTrue(result.stdout.contains("5 layers") && result.stdout.contains("model.safetensors"), result.stdout)

        let raw = folder.file("raw.dsv2").path
        result = try run(["unpack", packed, "-o", raw, "--quiet"])
        XCTAssertEqual(result.status, 0, result.stderr)
        let a = try ContainerReader(path: packed), b = try ContainerReader(path: raw)
        for name in a.tensorNames {
            XCTAssertEqual(b.entry(name)!.compression, .none)
            XCTAssertTrue(bytesOf(try a.tensor(name)) == bytesOf(try b.tensor(name)), name)
        }

        // Container → container: re-quantizing q4-mixed values needs --allow-requantize.
        let requant = folder.file("requant.dsv2").path
        result = try run(["convert", raw, "-o", requant, "--quant", "q8", "--quiet"])
        XCTAssertEqual(result.status, 2, result.stderr)
        XCTAssertTrue(result.stderr.contains("--allow-requantize"), result.stderr)
        result = try run(["convert", raw, "-o", requant, "--quant", "q8", "--quiet", "--allow-requantize"])
        XCTAssertEqual(result.status, 0, result.stderr)
        XCTAssertEqual(try run(["verify", requant, "--quiet"]).status, 0)
    }

    func testVerifyNamesTheBadTensorAndFails() throws {
        let folder = TemporaryDirectory()
        let path = folder.file("flip.dsv2")
        XCTAssertEqual(try run(["convert", Fixtures.url("lite-greedy").path, "-o", path.path, "--quant", "bf16",
                                "--compress", "zstd", "--quiet"]).status, 0)
        let reader = try ContainerReader(path: path.path)
        let victim = reader.metadata.tensors[5]
        try flipByte(path, at: victim.offset + victim.storedSize - 3)
        let result = try run(["verify", path.path])
        XCTAssertEqual(result.status, 1)
        XCTAssertTrue(result.stderr.contains(victim.name) && result.stderr.contains("1 problem"), result.stderr)
        // Truncated: a clear error, no crash.
        truncateFile(path, to: victim.offset)
        let truncated = try run(["verify", path.path])
        XCTAssertEqual(truncated.status, 1)
        XCTAssertTrue(truncated.stderr.contains("truncated"), truncated.stderr)
        let inspect = try run(["inspect", path.path])
        XCTAssertNotEqual(inspect.status, 0)
        XCTAssertTrue(inspect.stderr.contains("truncated"), inspect.stderr)
    }

    func testBadCheckpointErrorsNameTheTensor() throws {
        let folder = TemporaryDirectory()
        try copyFixture("lite-greedy", to: folder.file("hf"))
        let configURL = folder.file("hf/config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        config["kv_lora_rank"] = (config["kv_lora_rank"] as! Int) * 2
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        let result = try run(["convert", folder.file("hf").path, "-o", folder.file("out.dsv2").path, "--quant", "q8"])
        XCTAssertNotEqual(result.status, 0)
        // The first tensor in model order whose shape depends on kv_lora_rank.
        XCTAssertTrue(result.stderr.contains("model.layers.0.self_attn.kv_a_proj_with_mqa.weight")
                      && result.stderr.contains("model.safetensors"), result.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder.file("out.dsv2").path))
    }

    /// Kill the converter half-way (SIGKILL: nothing can clean up; SIGTERM, SIGHUP, SIGINT: the
    /// temporary file is removed too, status 128 + signal). Nothing that verifies or loads may
    /// remain at the target path, and the next write into the folder removes what SIGKILL left.
    func testInterruptedConversionLeavesNothingAtTheTarget() throws {
        for signal in [SIGKILL, SIGTERM, SIGHUP, SIGINT] {
            let folder = TemporaryDirectory()
            let target = folder.file("model.dsv2")
            let conversion = try DSV2Process.start(["convert", Fixtures.url("tiny-dsv2").path, "-o", target.path, "--quant", "q8", "--quiet"],
                                                   stdin: "", environment: ["DSV2_TEST_SLOW_WRITE_MS": "20"])   // 249 tensors ≈ 5 s
            // Wait until the writer has started (its temporary file exists), then a little more.
            let deadline = Date().addingTimeInterval(20)
            while Date() < deadline {
                let names = (try? FileManager.default.contentsOfDirectory(atPath: folder.url.path)) ?? []
                if names.contains(where: { $0.hasPrefix(".model.dsv2.tmp-") }) { break }
                usleep(20_000)
            }
            usleep(500_000)
            XCTAssertTrue(conversion.isRunning, "the conversion finished before it could be interrupted")
            conversion.signal(signal)
            let ended = try conversion.finish()
            if signal == SIGKILL {
                XCTAssertTrue(ended.signalled)
            } else {   // the cleanup handler ran and exited as a shell expects
                XCTAssertEqual(ended.status, 128 + signal, ended.stderr)
            }
            XCTAssertFalse(FileManager.default.fileExists(atPath: target.path), "signal \(signal)")
            let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.url.path)
            if signal != SIGKILL {
                XCTAssertEqual(leftovers, [], "signal \(signal) removes the temporary file")
                continue
            }
            XCTAssertEqual(leftovers.count, 1)
            for name in leftovers {   // a SIGKILLed temporary file is not a container
                XCTAssertThrowsError(try ContainerReader(path: folder.file(name).path))
                XCTAssertNotEqual(try run(["verify", folder.file(name).path]).status, 0)
            }
            // Its process is gone: the next write into the folder removes it.
            XCTAssertEqual(try run(["dump", "--ids", "1", "-o", folder.file("next.safetensors").path]).status, 0)
            XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.url.path), ["next.safetensors"])
        }
    }
}
