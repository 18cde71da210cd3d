import Foundation
import TestSupport
import XCTest

/// Every file of `Tests/Fixtures/malformed/` through the built binary: each must end in a clear
/// error (stderr names the file, and what is wrong), the documented exit code and no signal,
/// leaving nothing behind: not next to its input, not in the folder an output was asked for.
///
/// A row is a folder of the corpus, the name its files take and the commands run on each
/// (`Row`): adding a kind of input is one row; adding a case is one file (the model-file
/// folders are written by `scripts/malformed-fixtures`).
final class MalformedInputTests: XCTestCase {
    /// One command run on a malformed file and the exit status it must end with.
    struct Command {
        /// The arguments, given the case's folder, the malformed file in it and an empty output
        /// folder.
        var arguments: (_ folder: URL, _ file: URL, _ output: URL) -> [String]
        /// ExitStatus: 2 for an input error; `verify` reports a damaged container with 1.
        var status: Int32 = 2
        var input: Data? = nil
    }

    /// How the files of one corpus folder are run: each is placed alone (with its companions)
    /// in a fresh folder under the name `role`.
    struct Row {
        var folder: String
        /// The name the file gets in its folder (what the commands look for).
        var role: String
        /// Valid files placed next to it: name in the folder, source.
        var companions: [(String, URL)] = []
        var commands: [Command]
    }

    static let corpus = Fixtures.url("malformed")
    static let valid = corpus.appendingPathComponent("valid")

    // The commands: the model is the case's folder (a Hugging Face folder) or the file itself.
    static func inspect(folder: Bool) -> Command {
        Command { f, file, _ in ["inspect", (folder ? f : file).path] }
    }
    static func convert(folder: Bool) -> Command {
        Command { f, file, out in ["convert", (folder ? f : file).path, "--quant", "bf16", "-q", "-o", out.appendingPathComponent("m.dsv2").path] }
    }
    static func dump(folder: Bool, engine: String) -> Command {
        Command { f, file, out in ["dump", "-m", (folder ? f : file).path, "--engine", engine, "--ids", "1,2",
                                   "-o", out.appendingPathComponent("d.safetensors").path] }
    }
    static let verify = Command(arguments: { _, file, _ in ["verify", file.path] }, status: 1)
    /// `dsv2 tokenize` on a folder: one text line, then one chat line (so a template that only
    /// fails when rendered is reached too).
    static let tokenize = Command(arguments: { folder, _, _ in ["tokenize", "--model", folder.path, "--jsonl"] },
                                  input: Data("""
                                      {"text": "Hello world 123"}
                                      {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "add_generation_prompt": true}

                                      """.utf8))

    static let rows: [Row] = [
        Row(folder: "tokenizer", role: "tokenizer.json", commands: [tokenize]),
        Row(folder: "tokenizer_config", role: "tokenizer_config.json",
            companions: [("tokenizer.json", TokenizerFixtures.folder("deepseek-v2-style").appendingPathComponent("tokenizer.json"))],
            commands: [tokenize]),
        // Damaged safetensors header or table: refused when the folder is opened.
        Row(folder: "safetensors", role: "model.safetensors", companions: [("config.json", valid.appendingPathComponent("config.json"))],
            commands: [inspect(folder: true), convert(folder: true)]),
        // Tensors that do not match config.json, non-finite weights: refused when loaded.
        Row(folder: "safetensors-load", role: "model.safetensors", companions: [("config.json", valid.appendingPathComponent("config.json"))],
            commands: [convert(folder: true), dump(folder: true, engine: "reference"), dump(folder: true, engine: "quantized")]),
        Row(folder: "safetensors-index", role: "model.safetensors.index.json",
            companions: [("config.json", valid.appendingPathComponent("config.json")),
                         ("model-00001-of-00001.safetensors", valid.appendingPathComponent("model.safetensors"))],
            commands: [inspect(folder: true), convert(folder: true)]),
        Row(folder: "config", role: "config.json", companions: [("model.safetensors", valid.appendingPathComponent("model.safetensors"))],
            commands: [inspect(folder: true), convert(folder: true)]),
        // Damaged container header, metadata or table: refused when opened.
        Row(folder: "container", role: "model.dsv2", commands: [inspect(folder: false), verify, convert(folder: false)]),
        // A table that disagrees with the embedded config, damaged or non-finite tensor bytes:
        // refused by verify and whenever the weights are loaded.
        Row(folder: "container-load", role: "model.dsv2", commands: [verify, convert(folder: false), dump(folder: false, engine: "quantized")]),
        // Damaged GGUF header, metadata or table: refused when parsed.
        Row(folder: "gguf", role: "model.gguf", commands: [inspect(folder: false), convert(folder: false)]),
        // Metadata that is no DeepSeek-V2 model, tensors that do not match it, a bad tokenizer,
        // non-finite weights: refused when loaded.
        Row(folder: "gguf-load", role: "model.gguf", commands: [convert(folder: false), dump(folder: false, engine: "quantized")]),
    ]

    func testEveryMalformedFileIsAClearError() throws {
        var cases: [(Row, URL)] = []
        for row in Self.rows {
            let files = try FileManager.default.contentsOfDirectory(at: Self.corpus.appendingPathComponent(row.folder),
                                                                    includingPropertiesForKeys: nil)
                .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
            XCTAssertFalse(files.isEmpty, row.folder)
            cases += files.map { (row, $0) }
        }
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path)
            .filter { !$0.hasPrefix(".") && !$0.hasSuffix(".md") && $0 != "valid" }
        XCTAssertEqual(Set(folders), Set(Self.rows.map(\.folder)), "every corpus folder has a row")

        // Two cases at a time: each run is a short process start, mostly waiting.
        let failures = FailureList()
        DispatchQueue.concurrentPerform(iterations: 2) { lane in
            for index in stride(from: lane, to: cases.count, by: 2) {
                let (row, source) = cases[index]
                do { try check(source, row, failures) } catch { failures.add("\(row.folder)/\(source.lastPathComponent): \(error)") }
            }
        }
        for failure in failures.all { XCTFail(failure) }
        XCTAssertGreaterThanOrEqual(cases.count, 200)
    }

    private func check(_ source: URL, _ row: Row, _ failures: FailureList) throws {
        let name = "\(row.folder)/\(source.lastPathComponent)"
        for command in row.commands {
            let folder = TemporaryDirectory(prefix: "dsv2-malformed")
            let output = TemporaryDirectory(prefix: "dsv2-malformed-out")
            let file = folder.file(row.role)
            try FileManager.default.copyItem(at: source, to: file)
            for (companion, from) in row.companions { try FileManager.default.copyItem(at: from, to: folder.file(companion)) }
            let before = try Set(FileManager.default.contentsOfDirectory(atPath: folder.url.path))
            let arguments = command.arguments(folder.url, file, output.url)
            let what = "\(name) (dsv2 \(arguments[0]))"

            let start = DispatchTime.now()
            let result = try DSV2Process.run(arguments, input: command.input)
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9

            guard !result.signalled else { failures.add("\(what): killed by signal \(result.status)\n\(result.stderr)"); continue }
            if result.status != command.status { failures.add("\(what): exit status \(result.status), expected \(command.status)\n\(result.stderr)") }
            // The file by its path, or its folder together with its name (an error about two
            // files, e.g. a tensor whose shape config.json does not expect, names both).
            let message = result.stdout + result.stderr
            if !message.contains(file.path), !(message.contains(folder.url.path) && message.contains(row.role)) {
                failures.add("\(what): the output does not name \(file.path):\n\(message.prefix(600))")
            }
            if result.stderr.count > 2000 { failures.add("\(what): the message should be short:\n\(result.stderr.prefix(300))") }
            if seconds > 20 { failures.add("\(what) took \(seconds) s") }
            let after = try Set(FileManager.default.contentsOfDirectory(atPath: folder.url.path))
            if after != before { failures.add("\(what): left \(after.subtracting(before).sorted()) next to the input") }
            let written = try FileManager.default.contentsOfDirectory(atPath: output.url.path)
            if !written.isEmpty { failures.add("\(what): left \(written.sorted()) in the output folder") }
        }
    }
}

/// Failures collected from both lanes, reported on the test's thread.
private final class FailureList: @unchecked Sendable {
    private let lock = NSLock()
    private var failures: [String] = []
    func add(_ failure: String) { lock.lock(); failures.append(failure); lock.unlock() }
    var all: [String] { lock.lock(); defer { lock.unlock() }; return failures }
}
