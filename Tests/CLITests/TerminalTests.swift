@testable import DSV2CLI
import DSV2Text
import Foundation
import TestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// The binary on a pseudo-terminal, as a person at a keyboard: the test holds the master side,
/// the program the slave as stdin, stdout and stderr.
final class PseudoTerminal {
    let master: Int32
    let process: Process
    private(set) var output = ""

    init(_ arguments: [String], columns: UInt16 = 80) throws {
        // The pty calls are not in Swift's Glibc module (they need _XOPEN_SOURCE): looked up in libc.
        typealias Open = @convention(c) (Int32) -> Int32
        typealias Name = @convention(c) (Int32) -> UnsafeMutablePointer<CChar>?
        guard let openSymbol = dlsym(nil, "posix_openpt"), let grantSymbol = dlsym(nil, "grantpt"),
              let unlockSymbol = dlsym(nil, "unlockpt"), let nameSymbol = dlsym(nil, "ptsname") else {
            throw XCTSkip("no pseudo-terminal functions in libc")
        }
        let posixOpenpt = unsafeBitCast(openSymbol, to: Open.self), grantpt = unsafeBitCast(grantSymbol, to: Open.self)
        let unlockpt = unsafeBitCast(unlockSymbol, to: Open.self), ptsname = unsafeBitCast(nameSymbol, to: Name.self)
        master = posixOpenpt(O_RDWR | O_NOCTTY)
        guard master >= 0, grantpt(master) == 0, unlockpt(master) == 0, let name = ptsname(master) else {
            throw XCTSkip("no pseudo-terminal available")
        }
        var size = winsize(ws_row: 24, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0)
        _ = ioctl(master, UInt(TIOCSWINSZ), &size)
        let slave = try XCTUnwrap(FileHandle(forUpdatingAtPath: String(cString: name)))
        process = try DSV2Process.launch(arguments)
        process.standardInput = slave
        process.standardOutput = slave
        process.standardError = slave
        try process.run()
        try slave.close()
    }

    deinit {
        if process.isRunning { process.terminate() }
        close(master)
    }

    /// Types `text` (bytes as a keyboard sends them).
    func type(_ text: String) {
        let bytes = Array(text.utf8)
        _ = bytes.withUnsafeBytes { write(master, $0.baseAddress!, $0.count) }
    }

    /// Reads the program's output until `marker` appears after what earlier waits consumed;
    /// returns the output from there through the marker. Fails after `seconds`.
    @discardableResult
    func waitFor(_ marker: String, seconds: Double = 30, file: StaticString = #filePath, line: UInt = #line) -> String {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            if let range = output.range(of: marker, range: consumed..<output.endIndex) {
                defer { consumed = range.upperBound }
                return String(output[consumed..<range.upperBound])
            }
            guard Date() < deadline else {
                XCTFail("no \"\(marker)\" within \(seconds) s; output: \(output[consumed...].debugDescription)", file: file, line: line)
                return String(output[consumed...])
            }
            _ = waitForOutput(0.1)
        }
    }

    private var consumed: String.Index { get { _consumed ?? output.startIndex } set { _consumed = newValue } }
    private var _consumed: String.Index?

    func waitForExit(seconds: Double = 30) -> Int32 {
        let deadline = Date().addingTimeInterval(seconds)
        while process.isRunning && Date() < deadline {
            _ = waitForOutput(0.05)
        }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        return process.terminationStatus
    }

    /// Drains output for up to `seconds` (so the program never blocks on a full terminal).
    private func waitForOutput(_ seconds: Double) -> Bool {
        var poller = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
        guard poll(&poller, 1, Int32(seconds * 1000)) > 0 else { return false }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = read(master, &buffer, buffer.count)
        if n > 0 { output += String(decoding: buffer[..<n], as: UTF8.self) }
        return n > 0
    }
}

/// `dsv2 chat` at a terminal, and the pieces of terminal output (line editing, progress line).
final class TerminalTests: XCTestCase {
    private let left = "\u{1B}[D", right = "\u{1B}[C", up = "\u{1B}[A", down = "\u{1B}[B", home = "\u{1B}[H", end = "\u{1B}[F"

    /// Typing with arrows, Home/End and the Ctrl keys edits the line; ↑ recalls an earlier line;
    /// /help, /system, /reset and /exit are commands, not messages; a """ block is one message.
    /// The messages reach the model exactly as edited: the JSON of each turn counts the tokens of
    /// the rendered conversation.
    func testChatLineEditingHistoryAndCommands() throws {
        let prompt = "> \u{1B}[K"   // a fresh prompt: the editor is reading (the terminal is in raw mode)
        let terminal = try PseudoTerminal(["chat", "-n", "4", "--json"])
        terminal.waitFor(prompt)
        // "Helo world" → ← ×5, insert "l" → "Hello world"; Ctrl-A, Ctrl-K clears; retype with Ctrl-U/W.
        terminal.type("Helo world" + String(repeating: left, count: 5) + "l")
        terminal.type("\u{01}\u{0B}")                             // Ctrl-A, Ctrl-K: empty line
        terminal.type("junk words\u{17}\u{17}")                   // Ctrl-W twice: empty again
        terminal.type("xyz\u{15}")                                // Ctrl-U: empty
        terminal.type("ello" + home + "H" + end + " there" + left + right + "\r")
        let first = terminal.waitFor("\"turn\":1}")
        XCTAssertEqual(promptTokens(first), try chatTokens([("user", "Hello there")]))
        terminal.waitFor(prompt)

        terminal.type("/help\r")
        terminal.waitFor("leave (Ctrl-D too)")
        terminal.waitFor(prompt)
        terminal.type("/system Be brief.\r")
        terminal.waitFor("[new conversation with this system message]")
        terminal.waitFor(prompt)
        // History: "Hello there", "/help", "/system Be brief.": ↑ ×3 reaches the first (a 4th ↑
        // stays there), ↓ goes to "/help", ↑ back to "Hello there".
        terminal.type(up + up + up + up + down + up + "\r")
        let recalled = terminal.waitFor("\"turn\":2}")
        XCTAssertEqual(promptTokens(recalled), try chatTokens([("system", "Be brief."), ("user", "Hello there")]))
        terminal.waitFor(prompt)

        terminal.type("/reset\r")
        terminal.waitFor("[conversation reset]")
        terminal.waitFor(prompt)
        terminal.type("\"\"\"\rfirst line\rsecond line\r\"\"\"\r")
        let block = terminal.waitFor("\"turn\":3}")
        XCTAssertEqual(promptTokens(block), try chatTokens([("system", "Be brief."), ("user", "first line\nsecond line")]))
        terminal.waitFor(prompt)
        terminal.type("/exit\r")
        XCTAssertEqual(terminal.waitForExit(), 0, terminal.output)
    }

    /// Ctrl-D on an empty line leaves (status 0); Ctrl-C at the prompt leaves with 130; the
    /// terminal is put back in its normal mode either way.
    func testChatLeavesOnCtrlDAndCtrlC() throws {
        let quit = try PseudoTerminal(["chat", "-n", "2"])
        quit.waitFor("> \u{1B}[K")
        quit.type("\u{04}")
        XCTAssertEqual(quit.waitForExit(), 0, quit.output)

        let interrupt = try PseudoTerminal(["chat", "-n", "2"])
        interrupt.waitFor("> \u{1B}[K")
        interrupt.type("half a li\u{03}")
        XCTAssertEqual(interrupt.waitForExit(), 130, interrupt.output)
        XCTAssertTrue(interrupt.output.contains("^C"), interrupt.output)
    }

    /// A conversion at a terminal draws its progress on one line that fits the terminal: every
    /// redraw starts with a carriage return, holds no newline and is narrower than the width.
    func testProgressFitsTheTerminal() throws {
        let scratch = TemporaryDirectory()
        for columns: UInt16 in [40, 100] {
            let terminal = try PseudoTerminal(["convert", Fixtures.url("tiny-dsv2").path, "--quant", "q8",
                                               "-o", scratch.file("\(columns).dsv2").path], columns: columns)
            XCTAssertEqual(terminal.waitForExit(), 0, terminal.output)
            let segments = terminal.output.components(separatedBy: "\r\u{1B}[2K").dropFirst()
            let bars = segments.map { $0.components(separatedBy: "\r\n")[0] }.filter { $0.hasPrefix("[") }
            XCTAssertFalse(bars.isEmpty, terminal.output)
            for bar in bars {
                XCTAssertLessThan(bar.count, Int(columns), bar)
                XCTAssertFalse(bar.contains("\n"), bar)
            }
        }
    }

    // MARK: Pure pieces

    func testProgressLineFitsEveryWidth() {
        let fields = ["1.2 GB / 3.4 GB", "12/249", "120.0 MB/s", "ETA 0:12", "model.layers.12.mlp.experts.33.down_proj.weight"]
        for columns in [1, 8, 20, 40, 80, 200] {
            let line = ProgressReporter.line(fraction: 0.42, fields: fields, columns: columns)
            XCTAssertLessThanOrEqual(line.count, max(10, columns - 1), "\(columns): \(line)")
            XCTAssertFalse(line.contains("\n"))
            XCTAssertTrue(line.contains("42%"), "\(columns): \(line)")
        }
        XCTAssertTrue(ProgressReporter.line(fraction: 1, fields: fields, columns: 200).contains("down_proj.weight"))
    }

    func testEditStateKeys() {
        var state = EditState(prompt: "> ", columns: 80, history: ["older", "newer"])
        func type(_ text: String) { for s in text.unicodeScalars { _ = state.apply(.character(s)) } }
        type("wörld")
        _ = state.apply(.control(0x01))
        type("hello ")
        XCTAssertEqual(state.text, "hello wörld")
        _ = state.apply(.csi(parameters: "1;5", final: "D"))  // Ctrl-←: from after "hello " to its start
        _ = state.apply(.control(0x0B))
        XCTAssertEqual(state.text, "")
        type("a b c")
        _ = state.apply(.control(0x17))
        XCTAssertEqual(state.text, "a b ")
        _ = state.apply(.csi(parameters: "", final: "A"))
        XCTAssertEqual(state.text, "newer")
        _ = state.apply(.csi(parameters: "", final: "A"))
        _ = state.apply(.csi(parameters: "", final: "A"))
        XCTAssertEqual(state.text, "older")
        _ = state.apply(.csi(parameters: "", final: "B"))
        _ = state.apply(.csi(parameters: "", final: "B"))
        XCTAssertEqual(state.text, "a b ", "the draft comes back")
        _ = state.apply(.csi(parameters: "3", final: "~"))  // Delete at the end: nothing
        _ = state.apply(.control(0x7F))
        XCTAssertEqual(state.text, "a b")
        XCTAssertEqual(state.apply(.control(0x04)), .continue, "Ctrl-D on a non-empty line is not the end")
        XCTAssertEqual(state.apply(.control(0x0D)), .submit)
        var empty = EditState(prompt: "> ", columns: 80, history: [])
        XCTAssertEqual(empty.apply(.control(0x04)), .endOfInput)
        XCTAssertEqual(empty.apply(.control(0x03)), .interrupt)
    }

    /// A line wider than the terminal scrolls: the row never reaches the last column.
    func testEditStateScrollsALongLine() {
        var state = EditState(prompt: "> ", columns: 20, history: [])
        for s in String(repeating: "abcdefghij", count: 5).unicodeScalars { _ = state.apply(.character(s)) }
        let row = state.render()
        let visible = row.components(separatedBy: "\u{1B}[K")[0].dropFirst()   // after "\r"
        XCTAssertLessThan(visible.count, 20, String(visible))
        XCTAssertTrue(visible.hasSuffix("hij"), String(visible))
        XCTAssertEqual(EditState.width("日本".unicodeScalars), 4)
        XCTAssertEqual(EditState.width("e\u{301}".unicodeScalars), 1)
    }

    // MARK: Helpers

    private func promptTokens(_ output: String) -> Int {
        guard let line = output.split(whereSeparator: \.isNewline).first(where: { $0.hasPrefix("{") }),
              let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return -1 }
        return (object["prompt_tokens"] as? Int ?? 0) + (object["reused_tokens"] as? Int ?? 0)
    }

    private func chatTokens(_ messages: [(String, String)]) throws -> Int {
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        return try tokenizer.encodeChat(messages.map { ChatMessage(role: $0.0, content: $0.1) }, addGenerationPrompt: true).count
    }
}
