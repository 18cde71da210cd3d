@testable import DSV2Core
import Foundation
import TestSupport
import XCTest

/// The command line's shared behaviour: engines chosen the same way everywhere, the memory check,
/// generation defaults, thread limits, the KV-cache type, inputs that are not regular files, and
/// outputs written atomically.
final class CommandLineBehaviourTests: XCTestCase {
    private let folder = Fixtures.url("tiny-dsv2").path
    private let container = Fixtures.repositoryRoot.appendingPathComponent("Tools/dsv2/Resources/tiny-dsv2.dsv2").path

    private func json(_ r: DSV2Process.Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        try XCTUnwrap(try JSONSerialization.jsonObject(with: r.stdoutData) as? [String: Any], r.stderr, file: file, line: line)
    }

    /// A folder runs on the quantized engine in q8 unless told otherwise; --quant implies the
    /// quantized engine; the reference is asked for by name; a quantized container is not
    /// re-quantized without --allow-requantize.
    func testEngineChoice() throws {
        func label(_ arguments: [String]) throws -> String {
            let r = try DSV2Process.run(["generate", "-p", "Hi", "-n", "1", "--json"] + arguments)
            XCTAssertEqual(r.status, 0, r.stderr)
            return try json(r)["model"] as? String ?? ""
        }
        XCTAssertEqual(try label(["-m", folder]), "tiny-dsv2 (quantized, q8)")
        XCTAssertEqual(try label(["-m", folder, "--quant", "q4"]), "tiny-dsv2 (quantized, q4)")
        XCTAssertEqual(try label(["-m", folder, "--engine", "reference"]), "tiny-dsv2 (reference, f32)")
        XCTAssertEqual(try label([]), "tiny-dsv2.dsv2 (quantized, q8)")
        XCTAssertEqual(try label(["--quant", "q4", "--allow-requantize"]), "tiny-dsv2.dsv2 (quantized, q4)")

        let requantize = try DSV2Process.run(["generate", "-p", "Hi", "--quant", "q4"])
        XCTAssertEqual(requantize.status, 2)
        XCTAssertTrue(requantize.stderr.contains("is stored as q8") && requantize.stderr.contains("--allow-requantize"), requantize.stderr)
        let mixed = try DSV2Process.run(["generate", "-p", "Hi", "-m", folder, "--engine", "reference", "--quant", "q4"])
        XCTAssertEqual(mixed.status, 2)
        XCTAssertTrue(mixed.stderr.contains("--quant q4 needs the quantized engine"), mixed.stderr)
        // dump and perplexity take a container too (they used to read only config.json folders).
        let scratch = TemporaryDirectory()
        XCTAssertEqual(try DSV2Process.run(["dump", "-m", container, "--ids", "1,2", "-o", scratch.file("d.st").path]).status, 0)
    }

    /// The estimate is printed with --verbose and checked against the available memory before
    /// anything is loaded; --no-memory-check overrides. The budget comes from
    /// DSV2_MEMORY_AVAILABLE (the test stand-in for MemAvailable).
    func testMemoryCheck() throws {
        let verbose = try DSV2Process.run(["generate", "-p", "Hi", "-n", "4", "-v"])
        XCTAssertEqual(verbose.status, 0, verbose.stderr)
        XCTAssertTrue(verbose.stderr.contains("memory: weights 9.2 MB + KV cache "), verbose.stderr)
        XCTAssertTrue(verbose.stderr.contains("engine: tiny-dsv2.dsv2 (quantized, q8), f16 KV cache, 1 thread"), verbose.stderr)

        let refused = try DSV2Process.run(["generate", "-p", "Hi", "-n", "4"], environment: ["DSV2_MEMORY_AVAILABLE": "5000000"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.hasPrefix("dsv2 generate: error: tiny-dsv2.dsv2 (quantized, q8) needs about "), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("(weights 9.2 MB + KV cache "), refused.stderr)
        XCTAssertTrue(refused.stderr.contains("but 5.0 MB is available") && refused.stderr.contains("--no-memory-check"), refused.stderr)
        XCTAssertEqual(refused.stdout, "", "refused before anything ran")
        let forced = try DSV2Process.run(["generate", "-p", "Hi", "-n", "4", "--no-memory-check"],
                                         environment: ["DSV2_MEMORY_AVAILABLE": "5000000"])
        XCTAssertEqual(forced.status, 0, forced.stderr)

        // The reference holds fp32 weights: 4 bytes per parameter (8.59M parameters).
        let inspect = try DSV2Process.run(["inspect", folder, "--engine", "reference", "-c", "64", "--json"])
        XCTAssertEqual(inspect.status, 0, inspect.stderr)
        let memory = try XCTUnwrap(try json(inspect)["memory"] as? [String: Any])
        XCTAssertEqual(memory["weight_bytes"] as? Int, 8_590_592 * 4)
        XCTAssertEqual(memory["context_tokens"] as? Int, 64)
    }

    /// tiny-dsv2's generation_config.json says do_sample: false, so it decodes greedily by default
    /// (and prints no seed); another file's sampling values are the defaults of its model.
    func testGenerationDefaultsAndSeeds() throws {
        let greedy = try DSV2Process.run(["generate", "-p", "Hi", "-n", "8", "-v"])
        XCTAssertEqual(greedy.status, 0, greedy.stderr)
        XCTAssertTrue(greedy.stderr.contains("generation defaults: EOS [6001], greedy (generation_config.json: do_sample=false)"), greedy.stderr)
        XCTAssertFalse(greedy.stderr.contains("seed"), greedy.stderr)
        let greedyJSON = try json(try DSV2Process.run(["generate", "-p", "Hi", "-n", "8", "--json"]))
        XCTAssertNil(greedyJSON["seed"])

        let sampled = try json(try DSV2Process.run(["generate", "-p", "Hi", "-n", "8", "--json", "--temp", "0.8", "--seed", "-1"]))
        XCTAssertNotNil(sampled["seed"] as? Int, "a negative seed is a random one, reported")

        let scratch = TemporaryDirectory()
        let copy = scratch.file("model")
        try copyFixture("tiny-dsv2", to: copy)
        try Data(#"{"do_sample": true, "temperature": 0.5, "top_p": 0.9}"#.utf8).write(to: copy.appendingPathComponent("generation_config.json"))
        let own = try DSV2Process.run(["generate", "-m", copy.path, "-p", "Hi", "-n", "4", "-v"])
        XCTAssertEqual(own.status, 0, own.stderr)
        XCTAssertTrue(own.stderr.contains("temperature 0.5, top-k 40, top-p 0.9, min-p 0.05, repeat penalty 1 (generation_config.json: temperature=0.5, top_p=0.9)"),
                      own.stderr)
        XCTAssertTrue(own.stderr.contains(", seed "), own.stderr)
    }

    /// At most 4 threads per core unless --threads-force.
    func testThreadCeiling() throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        let tooMany = "\(4 * cores + 1)"
        let refused = try DSV2Process.run(["generate", "-p", "Hi", "-n", "1", "-t", tooMany])
        XCTAssertEqual(refused.status, 2)
        XCTAssertTrue(refused.stderr.contains("more than 4 per core") && refused.stderr.contains("--threads-force"), refused.stderr)
        XCTAssertEqual(try DSV2Process.run(["generate", "-p", "Hi", "-n", "1", "-t", tooMany, "--threads-force"]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["generate", "-p", "Hi", "-n", "1", "-t", "100000", "--threads-force"]).status, 2)
        XCTAssertEqual(try DSV2Process.run(["bench", "kernels", "-t", "1,\(tooMany)"]).status, 2)
    }

    /// `--kv-cache f32` with `--quant f32` leaves the quantized engine only fp32 summation-order
    /// differences from the reference (relative RMS of the logits ~1e-6; 1e-5 allows for it),
    /// while the default f16 cache rounds every cached value to 11 bits (~2e-4) and bf16 to 8
    /// bits (~1.5e-3, 8× coarser; 1e-2 bounds it as `GoldenTolerance.bf16Cache` bounds the
    /// largest difference): the flag really changes the cache.
    func testKVCacheType() throws {
        let scratch = TemporaryDirectory()
        let ids = "6000,464,3290,286,1200,318,257,1263"
        func dump(_ name: String, _ extra: [String]) throws -> String {
            let out = scratch.file(name).path
            let r = try DSV2Process.run(["dump", "-m", folder, "--ids", ids, "--trace", "logits", "-o", out] + extra)
            XCTAssertEqual(r.status, 0, r.stderr)
            return out
        }
        let reference = try dump("ref.st", ["--engine", "reference"])
        let f32 = try dump("f32.st", ["--quant", "f32", "--kv-cache", "f32"])
        let f16 = try dump("f16.st", ["--quant", "f32"])
        XCTAssertEqual(try DSV2Process.run(["compare", reference, f32, "--fail-above", "logits:rrms>1e-5"]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["compare", reference, f16, "--fail-above", "logits:rrms>1e-5"]).status, 1)
        let bf16 = try dump("bf16.st", ["--quant", "f32", "--kv-cache", "bf16"])
        XCTAssertEqual(try DSV2Process.run(["compare", reference, bf16, "--fail-above", "logits:rrms>1e-5"]).status, 1)
        XCTAssertEqual(try DSV2Process.run(["compare", reference, bf16, "--fail-above", "logits:rrms>1e-2"]).status, 0)
        XCTAssertEqual(try DSV2Process.run(["dump", "--engine", "reference", "--kv-cache", "f32", "--ids", "1", "-o", scratch.file("x").path]).status, 2)
    }

    /// A FIFO, a device or a folder given as an input file is refused at once (opening a FIFO
    /// without a writer would block forever).
    func testNonRegularInputsAreRefusedWithoutBlocking() throws {
        let scratch = TemporaryDirectory()
        let fifo = scratch.file("fifo").path
        XCTAssertEqual(mkfifo(fifo, 0o600), 0)
        let cases: [([String], String)] = [
            (["generate", "-m", fifo, "-p", "x"], "is a FIFO"),
            (["generate", "-f", fifo], "is a FIFO"),
            (["generate", "-f", "/dev/zero"], "is a device"),
            (["perplexity", "--text", fifo], "is a FIFO"),
            (["perplexity", "--text", scratch.url.path], "is a folder"),
            (["compare", fifo, fifo], "FIFO"),
            (["inspect", fifo], "is a FIFO"),
            (["verify", fifo], "is a FIFO"),
            (["convert", fifo, "--quant", "q8", "-o", scratch.file("o.dsv2").path], "is a FIFO"),
            (["tokenize", "-m", "/dev/null"], "is a device"),
        ]
        for (arguments, message) in cases {
            let process = try DSV2Process.launch(arguments)
            let errors = Pipe()
            process.standardError = errors
            process.standardOutput = FileHandle.nullDevice
            process.standardInput = FileHandle.nullDevice
            try process.run()
            let deadline = Date().addingTimeInterval(20)
            while process.isRunning && Date() < deadline { usleep(10_000) }
            if process.isRunning { process.terminate(); XCTFail("\(arguments) blocked") }
            process.waitUntilExit()
            let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            XCTAssertEqual(process.terminationStatus, 2, "\(arguments): \(stderr)")
            XCTAssertTrue(stderr.contains(message), "\(arguments): \(stderr)")
        }
    }

    /// `dump` writes through a temporary file: an existing output needs --force, and a write that
    /// fails half-way (here the file-size limit, standing in for a full disk) leaves neither the
    /// output nor the temporary file.
    func testDumpWritesAtomically() throws {
        let scratch = TemporaryDirectory()
        let out = scratch.file("d.st").path
        XCTAssertEqual(try DSV2Process.run(["dump", "--ids", "1,2", "-o", out]).status, 0)
        let first = try Data(contentsOf: URL(fileURLWithPath: out))
        let again = try DSV2Process.run(["dump", "--ids", "3,4", "-o", out])
        XCTAssertEqual(again.status, 2)
        XCTAssertTrue(again.stderr.contains("exists; add --force"), again.stderr)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: out)), first, "untouched without --force")
        XCTAssertEqual(try DSV2Process.run(["dump", "--ids", "3,4", "-o", out, "--force"]).status, 0)
        XCTAssertNotEqual(try Data(contentsOf: URL(fileURLWithPath: out)), first)

        let limited = Process()
        limited.executableURL = URL(fileURLWithPath: "/bin/sh")
        limited.arguments = ["-c", "ulimit -f 64; trap '' XFSZ; exec \"$0\" dump --ids 1,2,3 -o \"$1\"",
                             Fixtures.dsv2Binary.path, scratch.file("big.st").path]
        let errors = Pipe()
        limited.standardError = errors
        try limited.run()
        limited.waitUntilExit()
        let stderr = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        XCTAssertEqual(limited.terminationStatus, 1, stderr)
        XCTAssertTrue(stderr.contains("dsv2 dump: error: ") && stderr.contains("big.st"), stderr)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path), ["d.st"])
    }

    /// Temporaries of a process that no longer exists are removed by the next write into their
    /// folder; those of a live process are not.
    func testStaleTemporariesOfDeadProcessesAreRemoved() throws {
        let scratch = TemporaryDirectory()
        let finished = Process()
        finished.executableURL = URL(fileURLWithPath: "/bin/true")
        try finished.run()
        finished.waitUntilExit()
        let dead = finished.processIdentifier
        let live = getpid()
        let stale = ".model.dsv2.tmp-\(dead)", alive = ".other.st.tmp-\(live)", unrelated = "notes.tmp-\(dead)"
        for name in [stale, alive, unrelated] { try Data("x".utf8).write(to: scratch.file(name)) }
        try FileManager.default.createDirectory(at: scratch.file(".synth.tmp-\(dead)"), withIntermediateDirectories: false)
        XCTAssertEqual(try DSV2Process.run(["dump", "--ids", "1", "-o", scratch.file("d.st").path]).status, 0)
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: scratch.url.path)), [alive, unrelated, "d.st"])
        XCTAssertEqual(TemporaryOutput.stalePID(".a.b.tmp-42"), 42)
        XCTAssertNil(TemporaryOutput.stalePID(".tmp-42"))
        XCTAssertNil(TemporaryOutput.stalePID(".a.tmp-4x"))
    }
}
