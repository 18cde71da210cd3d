import Foundation
import TestSupport
import XCTest

/// The exit statuses are the same in every command: 0 done, 1 failed, 2 usage or input error,
/// 130 interrupted; every error is one `dsv2 <command>: error: …` on stderr. One test per command,
/// each class the command can produce.
final class ExitStatusTests: XCTestCase {
    private let folder = Fixtures.url("tiny-dsv2").path
    private let container = Fixtures.repositoryRoot.appendingPathComponent("Tools/dsv2/Resources/tiny-dsv2.dsv2").path
    private var scratch: TemporaryDirectory!

    override func setUp() { scratch = TemporaryDirectory(prefix: "exit-status") }
    override func tearDown() { scratch = nil }

    private func path(_ name: String) -> String { scratch.file(name).path }

    /// Runs `arguments` and checks the status and, for an error, the one-line prefix.
    @discardableResult
    private func expect(_ status: Int32, _ arguments: [String], input: String? = nil, environment: [String: String] = [:],
                        file: StaticString = #filePath, line: UInt = #line) throws -> DSV2Process.Result {
        let r = try DSV2Process.run(arguments, input: input.map { Data($0.utf8) }, environment: environment)
        XCTAssertEqual(r.status, status, "\(arguments): \(r.stderr)", file: file, line: line)
        if status == 1 || status == 2 {
            let words = arguments.prefix { ["bench", "model", "kernels", "reference", "tokenizer", "generate", "chat", "tokenize",
                                            "dump", "compare", "perplexity", "convert", "inspect", "verify", "unpack", "synth"].contains($0) }
            let command = (["dsv2"] + words).joined(separator: " ")
            // A check that ran and failed reports on its own (verify's problems, compare's table).
            let checkFailed = status == 1 && (r.stderr.contains("problem") || r.stdout.contains("FIRST FAILURE"))
            XCTAssertTrue(r.stderr.contains("\(command): error: ") || checkFailed, "\(arguments): stderr \(r.stderr)", file: file, line: line)
        }
        return r
    }

    /// `arguments` waits for a signal (the test hook) and exits 130 on SIGINT: every command
    /// shares the handler that removes temporary files and exits.
    private func expectInterrupted(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let process = try DSV2Process.launch(arguments, environment: ["DSV2_TEST_PAUSE": "1"])
        let errors = Pipe()
        process.standardError = errors
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        var seen = ""
        while !seen.contains("paused") {
            let chunk = errors.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            seen += String(decoding: chunk, as: UTF8.self)
        }
        process.interrupt()
        process.waitUntilExit()
        XCTAssertEqual(process.terminationStatus, 130, "\(arguments): \(seen)", file: file, line: line)
    }

    /// A memory budget of 1000 bytes: every model-loading command refuses with status 1.
    private let tinyBudget = ["DSV2_MEMORY_AVAILABLE": "1000"]

    func testGenerate() throws {
        try expect(0, ["generate", "-p", "Hi", "-n", "2"])
        try expect(2, ["generate", "-p", "Hi", "--bogus"])
        try expect(2, ["generate", "-p", "Hi", "-m", path("missing")])
        try expect(2, ["generate", "-f", path("missing.txt")])
        try expect(1, ["generate", "-p", "Hi"], environment: tinyBudget)
        try expectInterrupted(["generate", "-p", "Hi"])
    }

    func testChat() throws {
        try expect(0, ["chat", "-n", "2"], input: "Hi\n")
        try expect(2, ["chat", "--temp", "x"], input: "")
        try expect(2, ["chat", "-m", path("missing")], input: "Hi\n")
        try expect(1, ["chat"], input: "Hi\n", environment: tinyBudget)
        try expectInterrupted(["chat"])
    }

    func testTokenize() throws {
        try expect(0, ["tokenize"], input: "Hi\n")
        try expect(2, ["tokenize", "--decode", "--bos"], input: "")
        try expect(2, ["tokenize", "-m", path("missing")], input: "Hi\n")
        try expect(2, ["tokenize", "--decode"], input: "99999\n")
        try expectInterrupted(["tokenize"])
    }

    func testDump() throws {
        try expect(0, ["dump", "--ids", "1,2", "-o", path("a.st")])
        try expect(2, ["dump", "--ids", "1,2", "-o", path("a.st")])             // exists, no --force
        try expect(2, ["dump", "--ids", "1,2", "-o", path("b.st"), "-m", path("missing")])
        try expect(2, ["dump", "--ids", "1,99999", "-o", path("b.st")])          // not in the vocabulary
        try expect(1, ["dump", "--ids", "1,2", "-o", path("b.st")], environment: tinyBudget)
        try expect(1, ["dump", "--ids", "1,2", "-o", "/proc/dsv2-cannot-write.st"])
        try expectInterrupted(["dump", "--ids", "1,2", "-o", path("c.st")])
    }

    func testCompare() throws {
        try expect(0, ["dump", "--ids", "1,2", "-o", path("a.st")])
        try expect(0, ["compare", path("a.st"), path("a.st"), "--fail-above", "logits:kl>0"])
        try expect(2, ["compare", path("a.st"), path("missing.st")])
        try expect(2, ["compare", path("a.st"), path("a.st"), "--fail-above", "logit:kl>0"])   // matches nothing
        try expect(1, ["compare", path("a.st"), path("a.st"), "--fail-above", "logits:kl>=0"])
        try expect(1, ["compare", "-m", folder, "--engines", "quantized:q8,quantized:q4", "--ids", "1,2"], environment: tinyBudget)
        try expectInterrupted(["compare", path("a.st"), path("a.st")])
    }

    func testPerplexity() throws {
        try Data(String(repeating: "The sun rose over the sea. ", count: 8).utf8).write(to: scratch.file("text.txt"))
        try expect(0, ["perplexity", "--text", path("text.txt"), "-c", "32"])
        try expect(2, ["perplexity", "--text", path("missing.txt")])
        try expect(2, ["perplexity", "--text", path("text.txt"), "-c", "1"])
        try expect(1, ["perplexity", "--text", path("text.txt")], environment: tinyBudget)
        try expectInterrupted(["perplexity", "--text", path("text.txt")])
    }

    func testConvertUnpackVerifyInspect() throws {
        try expect(0, ["convert", folder, "--quant", "q8", "--compress", "zstd", "-o", path("z.dsv2"), "-q"])
        try expect(2, ["convert", folder, "--quant", "q9", "-o", path("y.dsv2")])
        try expect(2, ["convert", path("missing"), "--quant", "q8", "-o", path("y.dsv2")])
        try expect(1, ["convert", folder, "--quant", "q8", "-o", "/proc/dsv2-cannot-write.dsv2", "-q"])
        try expectInterrupted(["convert", folder, "--quant", "q8", "-o", path("x.dsv2")])

        try expect(0, ["unpack", path("z.dsv2"), "-o", path("raw.dsv2"), "-q"])
        try expect(2, ["unpack", path("missing.dsv2"), "-o", path("raw2.dsv2")])
        try expect(2, ["unpack", path("z.dsv2"), "-o", path("raw.dsv2")])           // exists, no --force
        try expect(1, ["unpack", path("z.dsv2"), "-o", "/proc/dsv2-cannot-write.dsv2", "-q"])
        try expectInterrupted(["unpack", path("z.dsv2"), "-o", path("raw3.dsv2")])

        try expect(0, ["verify", path("z.dsv2"), "-q"])
        try expect(2, ["verify", path("missing.dsv2")])
        try Data(count: 100).write(to: scratch.file("junk.dsv2"))
        try expect(1, ["verify", path("junk.dsv2")])
        try expectInterrupted(["verify", path("z.dsv2")])

        try expect(0, ["inspect", path("z.dsv2")])
        try expect(0, ["inspect", folder, "--json"])
        try expect(2, ["inspect", path("junk.dsv2")])
        try expect(2, ["inspect", path("missing.dsv2")])
        try expectInterrupted(["inspect", container])
    }

    func testSynth() throws {
        let config = Fixtures.url("v2-grouped/config.json").path
        try expect(0, ["synth", "--preset", config, "--quant", "q8", "-o", path("s.dsv2"), "-q"])
        try expect(2, ["synth", "--preset", config, "--quant", "q3", "-o", path("t.dsv2")])
        try expect(2, ["synth", "--preset", path("missing.json"), "-o", path("t.dsv2")])
        try expect(1, ["synth", "--preset", config, "--quant", "q8", "-o", "/proc/dsv2-cannot-write.dsv2", "-q"])
        try expectInterrupted(["synth", "--preset", config, "-o", path("u.dsv2")])
    }

    func testBench() throws {
        try expect(0, ["bench", "model", "-m", container, "--prompt-tokens", "4", "-n", "2", "-t", "1", "--repetitions", "1",
                       "--read-bandwidth", "1:10"])
        try expect(2, ["bench", "model", "-m", path("missing.dsv2")])
        try expect(2, ["bench", "model", "-m", container, "-t", "0"])
        try expect(1, ["bench", "model", "-m", container], environment: tinyBudget)
        try expectInterrupted(["bench", "model", "-m", container])
        try expect(2, ["bench", "kernels", "--types", "q5"])
        try expectInterrupted(["bench", "kernels"])
        try expect(2, ["bench", "reference", "--mla", "both-ways"])
        try expectInterrupted(["bench", "reference"])
        try expect(0, ["bench", "tokenizer", "-m", TokenizerFixtures.folder("deepseek-v2").path, "--megabytes", "0.01",
                       "--repetitions", "1"])
        try expect(2, ["bench", "tokenizer", "-m", path("missing")])
        try expectInterrupted(["bench", "tokenizer"])
    }

    /// `dsv2 --version`: the version and the commit the binary was built from.
    func testVersion() throws {
        let r = try expect(0, ["--version"])
        XCTAssertTrue(r.stdout.hasPrefix("dsv2 "), r.stdout)
        let commit = try XCTUnwrap(r.stdout.range(of: "(commit ")).upperBound
        let value = r.stdout[commit...].prefix { $0 != ")" && $0 != ":" }
        // Built from this checkout: its HEAD (a dirty tree is marked), unless git was missing.
        if value != "unknown" {
            XCTAssertTrue(value.count >= 12 && value.prefix(12).allSatisfy(\.isHexDigit), String(value))
        }
        try expect(2, ["--bogus"])
    }

    /// Help is status 0 on stdout, for the root and a subcommand.
    func testHelp() throws {
        for arguments in [["--help"], ["generate", "--help"], ["bench", "model", "-h"], ["help", "chat"]] {
            let r = try expect(0, arguments)
            XCTAssertTrue(r.stdout.contains("USAGE: dsv2"), "\(arguments): \(r.stdout)\(r.stderr)")
            XCTAssertEqual(r.stderr, "", "\(arguments)")
        }
    }
}
