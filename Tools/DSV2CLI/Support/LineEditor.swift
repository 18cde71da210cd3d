import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads lines from a terminal with editing and history, like a shell: ←/→, Home/End, Ctrl-A/E,
/// Ctrl-B/F, Backspace/Delete, Ctrl-K (cut to the end), Ctrl-U (cut to the start), Ctrl-W (cut
/// the word before the cursor), ↑/↓ or Ctrl-P/N (history), Ctrl-L (clear the screen), Enter.
/// Ctrl-D on an empty line is the end of input; Ctrl-C is an interrupt.
///
/// The terminal is in raw mode only while a line is read (so Ctrl-C during a reply is a signal
/// again), and restored on any signal that ends the program. A line longer than the terminal
/// scrolls sideways so it always fits on one row.
final class LineEditor {
    enum Input: Equatable { case line(String), endOfInput, interrupt }

    private let input: Int32
    private let output: Int32
    private(set) var history: [String] = []

    init(input: Int32 = STDIN_FILENO, output: Int32 = STDOUT_FILENO) {
        self.input = input
        self.output = output
    }

    /// Adds a line to the history (not blank, not a repeat of the last one).
    func remember(_ line: String) {
        guard !line.trimmingCharacters(in: .whitespaces).isEmpty, history.last != line else { return }
        history.append(line)
    }

    /// Reads one line after showing `prompt`.
    func readLine(prompt: String) -> Input {
        var saved = termios()
        guard tcgetattr(input, &saved) == 0 else { return .endOfInput }
        var raw = saved
        raw.c_lflag &= ~tcflag_t(ICANON | ECHO | ISIG | IEXTEN)
        raw.c_iflag &= ~tcflag_t(IXON | ICRNL | INLCR)
        withUnsafeMutableBytes(of: &raw.c_cc) { cc in
            cc[Int(VMIN)] = 1
            cc[Int(VTIME)] = 0
        }
        let fd = input
        let restore = { var original = saved; _ = tcsetattr(fd, TCSANOW, &original) }
        // TCSANOW, not TCSAFLUSH: keys typed ahead (or pasted) are kept.
        tcsetattr(input, TCSANOW, &raw)
        let token = Signals.addExitAction(restore)
        defer {
            restore()
            Signals.removeExitAction(token)
        }
        var state = EditState(prompt: prompt, columns: Terminal.columns(of: output) ?? 80, history: history)
        show(state.render())
        while true {
            guard let key = readKey() else {
                show("\r\n")
                return state.text.isEmpty ? .endOfInput : .line(state.text)
            }
            switch state.apply(key) {
            case .continue:
                if Signals.takeResized() { state.columns = Terminal.columns(of: output) ?? state.columns }
                show(state.render())
            case .clearScreen:
                show("\u{1B}[H\u{1B}[2J" + state.render())
            case .submit:
                show(state.renderFinal() + "\r\n")
                return .line(state.text)
            case .endOfInput:
                show("\r\n")
                return .endOfInput
            case .interrupt:
                show("^C\r\n")
                return .interrupt
            }
        }
    }

    private func show(_ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { write(output, $0.baseAddress! + offset, bytes.count - offset) }
            if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
        }
    }

    // MARK: Keys

    private func readByte() -> UInt8? {
        var byte: UInt8 = 0
        while true {
            let n = read(input, &byte, 1)
            if n == 1 { return byte }
            if n < 0 && errno == EINTR { continue }
            return nil
        }
    }

    /// One key: a character, a control key, or an escape sequence (CSI / SS3) decoded.
    private func readKey() -> Key? {
        guard let byte = readByte() else { return nil }
        switch byte {
        case 0x1B:
            guard let next = readByte() else { return .escape }
            if next == UInt8(ascii: "[") {
                var parameters = ""
                while let b = readByte() {
                    if (0x40...0x7E).contains(b) { return Key.csi(parameters: parameters, final: Character(Unicode.Scalar(b))) }
                    parameters.append(Character(Unicode.Scalar(b)))
                }
                return nil
            }
            if next == UInt8(ascii: "O"), let final = readByte() { return .csi(parameters: "", final: Character(Unicode.Scalar(final))) }
            return .alt(Character(Unicode.Scalar(next)))
        case 0x00..<0x20, 0x7F:
            return .control(byte)
        default:
            // A UTF-8 sequence: its length comes from the lead byte.
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            var bytes = [byte]
            while bytes.count < length, let b = readByte() { bytes.append(b) }
            return String(decoding: bytes, as: UTF8.self).unicodeScalars.first.map { .character($0) }
        }
    }
}

/// A key as read from the terminal.
enum Key: Equatable {
    case character(Unicode.Scalar)
    case control(UInt8)
    /// `ESC [ parameters final` (or `ESC O final`).
    case csi(parameters: String, final: Character)
    case alt(Character)
    case escape
}

/// The line being edited, its cursor and its place in the history; pure (no I/O), so the
/// editing rules are tested without a terminal.
struct EditState {
    enum Outcome { case `continue`, submit, endOfInput, interrupt, clearScreen }

    let prompt: String
    var columns: Int
    private(set) var scalars: [Unicode.Scalar] = []
    private(set) var cursor = 0
    private var history: [String]
    private var historyIndex: Int
    /// The line being typed before moving into the history.
    private var draft: [Unicode.Scalar] = []
    /// First shown scalar when the line is wider than the terminal.
    private var offset = 0

    init(prompt: String, columns: Int, history: [String]) {
        self.prompt = prompt
        self.columns = columns
        self.history = history
        historyIndex = history.count
    }

    var text: String { String(String.UnicodeScalarView(scalars)) }

    mutating func apply(_ key: Key) -> Outcome {
        switch key {
        case let .character(scalar):
            scalars.insert(scalar, at: cursor)
            cursor += 1
        case let .control(byte):
            switch byte {
            case 0x0D, 0x0A: return .submit
            case 0x03: return .interrupt
            case 0x04:
                if scalars.isEmpty { return .endOfInput }
                if cursor < scalars.count { scalars.remove(at: cursor) }
            case 0x01: cursor = 0
            case 0x05: cursor = scalars.count
            case 0x02: cursor = max(0, cursor - 1)
            case 0x06: cursor = min(scalars.count, cursor + 1)
            case 0x08, 0x7F:
                if cursor > 0 { scalars.remove(at: cursor - 1); cursor -= 1 }
            case 0x0B: scalars.removeSubrange(cursor...)
            case 0x15: scalars.removeSubrange(..<cursor); cursor = 0
            case 0x17:
                let start = wordStart(before: cursor)
                scalars.removeSubrange(start..<cursor)
                cursor = start
            case 0x10: recall(-1)
            case 0x0E: recall(+1)
            case 0x0C: return .clearScreen
            case 0x09: scalars.insert(" ", at: cursor); cursor += 1
            default: break
            }
        case let .csi(parameters, final):
            let word = parameters.hasSuffix(";5") || parameters.hasSuffix(";3")
            switch final {
            case "A": recall(-1)
            case "B": recall(+1)
            case "C": cursor = word ? wordEnd(after: cursor) : min(scalars.count, cursor + 1)
            case "D": cursor = word ? wordStart(before: cursor) : max(0, cursor - 1)
            case "H": cursor = 0
            case "F": cursor = scalars.count
            case "~":
                switch parameters {
                case "1", "7": cursor = 0
                case "4", "8": cursor = scalars.count
                case "3": if cursor < scalars.count { scalars.remove(at: cursor) }
                default: break
                }
            default: break
            }
        case let .alt(character):
            if character == "b" { cursor = wordStart(before: cursor) }
            if character == "f" { cursor = wordEnd(after: cursor) }
        case .escape:
            break
        }
        return .continue
    }

    /// Moves through the history (-1 older, +1 newer); the line being typed is kept as a draft.
    private mutating func recall(_ step: Int) {
        let target = historyIndex + step
        guard target >= 0, target <= history.count, target != historyIndex else { return }
        if historyIndex == history.count { draft = scalars }
        historyIndex = target
        scalars = target == history.count ? draft : Array(history[target].unicodeScalars)
        cursor = scalars.count
    }

    private func wordStart(before index: Int) -> Int {
        var i = index
        while i > 0, scalars[i - 1].properties.isWhitespace { i -= 1 }
        while i > 0, !scalars[i - 1].properties.isWhitespace { i -= 1 }
        return i
    }

    private func wordEnd(after index: Int) -> Int {
        var i = index
        while i < scalars.count, scalars[i].properties.isWhitespace { i += 1 }
        while i < scalars.count, !scalars[i].properties.isWhitespace { i += 1 }
        return i
    }

    /// The escape sequence that redraws the row: prompt, the visible part of the line, the
    /// cursor put back in place. Never writes the last column (some terminals wrap there).
    mutating func render() -> String {
        let promptWidth = Self.width(prompt.unicodeScalars)
        let room = max(4, columns - 1 - promptWidth)
        if cursor < offset { offset = cursor }
        while Self.width(scalars[offset..<cursor]) > room - 1 { offset += 1 }
        var end = offset
        while end < scalars.count, Self.width(scalars[offset...end]) <= room { end += 1 }
        let shown = String(String.UnicodeScalarView(scalars[offset..<end]))
        let cursorColumn = promptWidth + Self.width(scalars[offset..<cursor])
        return "\r" + prompt + shown + "\u{1B}[K\r" + (cursorColumn > 0 ? "\u{1B}[\(cursorColumn)C" : "")
    }

    /// The row as it stays once the line is submitted (its start, if it scrolled).
    mutating func renderFinal() -> String {
        cursor = scalars.count
        return render()
    }

    /// Terminal columns of `scalars`: combining marks take none, East Asian wide characters and
    /// emoji two.
    static func width<S: Sequence>(_ scalars: S) -> Int where S.Element == Unicode.Scalar {
        scalars.reduce(0) { sum, s in
            switch s.properties.generalCategory {
            case .nonspacingMark, .enclosingMark, .format: return sum
            default: break
            }
            let v = s.value
            let wide = (0x1100...0x115F).contains(v) || (0x2E80...0xA4CF).contains(v) || (0xAC00...0xD7A3).contains(v)
                || (0xF900...0xFAFF).contains(v) || (0xFE30...0xFE4F).contains(v) || (0xFF00...0xFF60).contains(v)
                || (0xFFE0...0xFFE6).contains(v) || (0x1F300...0x1F64F).contains(v) || (0x1F900...0x1F9FF).contains(v)
                || (0x20000...0x3FFFD).contains(v)
            return sum + (wide ? 2 : 1)
        }
    }
}
