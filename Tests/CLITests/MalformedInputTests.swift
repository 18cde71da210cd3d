import Foundation
import TestSupport
import XCTest

/// Every file of `Tests/Fixtures/malformed/` through the built binary: each must end in a clear
/// error (stderr names the file, and what is wrong), the documented exit code and no signal,
/// leaving nothing behind next to its input.
///
/// A row is a folder of the corpus and how the binary is run on each file in it (`CLIRun`):
/// adding a kind of input is one `CLIRun` and one row; adding a case is one file.
final class MalformedInputTests: XCTestCase {
    /// How the binary is run on one malformed file, placed alone (with its companions) in a
    /// fresh folder under the name `role`.
    struct CLIRun {
        /// The name the file gets in its folder (what the command looks for).
        var role: String
        /// Valid files placed next to it: name in the folder, source.
        var companions: [(String, URL)] = []
        /// The command line, given the folder and the file.
        var arguments: (_ folder: URL, _ file: URL) -> [String]
        /// Standard input.
        var input: Data? = nil
        /// The exit status of a rejected input: 2, an invalid input file (ExitStatus).
        var status: Int32 = 2
    }

    static let corpus = Fixtures.url("malformed")

    /// `dsv2 tokenize` on a folder: one text line, then one chat line (so a template that only
    /// fails when rendered is reached too).
    static let tokenize: (URL, URL) -> [String] = { folder, _ in ["tokenize", "--model", folder.path, "--jsonl"] }
    static let tokenizeInput = Data("""
        {"text": "Hello world 123"}
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "add_generation_prompt": true}

        """.utf8)

    /// Corpus folder -> how its files are run. Other input kinds add rows here.
    static let rows: [(folder: String, run: CLIRun)] = [
        ("tokenizer", CLIRun(role: "tokenizer.json", arguments: tokenize, input: tokenizeInput)),
        ("tokenizer_config", CLIRun(role: "tokenizer_config.json",
                                    companions: [("tokenizer.json", TokenizerFixtures.folder("deepseek-v2-style").appendingPathComponent("tokenizer.json"))],
                                    arguments: tokenize, input: tokenizeInput)),
    ]

    func testEveryMalformedFileIsAClearError() throws {
        var checked = 0
        for (folderName, run) in Self.rows {
            let files = try FileManager.default.contentsOfDirectory(at: Self.corpus.appendingPathComponent(folderName),
                                                                    includingPropertiesForKeys: nil)
                .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
            XCTAssertFalse(files.isEmpty, folderName)
            for source in files {
                try check(source, run, case: "\(folderName)/\(source.lastPathComponent)")
                checked += 1
            }
        }
        XCTAssertGreaterThanOrEqual(checked, 40)
    }

    private func check(_ source: URL, _ run: CLIRun, case name: String) throws {
        let folder = TemporaryDirectory(prefix: "dsv2-malformed")
        let file = folder.file(run.role)
        try FileManager.default.copyItem(at: source, to: file)
        for (companion, from) in run.companions { try FileManager.default.copyItem(at: from, to: folder.file(companion)) }
        let before = try Set(FileManager.default.contentsOfDirectory(atPath: folder.url.path))

        let start = DispatchTime.now()
        let result = try DSV2Process.run(run.arguments(folder.url, file), input: run.input)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9

        XCTAssertFalse(result.signalled, "\(name): killed by signal \(result.status)\n\(result.stderr)")
        XCTAssertEqual(result.status, run.status, "\(name): exit status\n\(result.stderr)")
        let message = result.stderr.trimmingCharacters(in: .whitespacesAndNewlines)
        XCTAssertTrue(message.contains(file.path), "\(name): stderr does not name \(file.path):\n\(message)")
        XCTAssertLessThan(message.count, 2000, "\(name): the message should be short:\n\(message.prefix(300))")
        XCTAssertLessThan(seconds, 20, "\(name) took \(seconds) s")
        let after = try Set(FileManager.default.contentsOfDirectory(atPath: folder.url.path))
        XCTAssertEqual(after, before, "\(name): left files behind")
    }
}
