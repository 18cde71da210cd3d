import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Terminal I/O: TTY detection, the width of the terminal, unbuffered streaming writes.
enum Terminal {
    /// Whether standard input is a terminal (then `chat` shows a prompt marker).
    static var stdinIsTTY: Bool { isatty(STDIN_FILENO) == 1 }
    static var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }

    /// Columns of the terminal on `fd` (TIOCGWINSZ), nil when it is not a terminal.
    static func columns(of fd: Int32 = STDERR_FILENO) -> Int? {
        var size = winsize()
        guard ioctl(fd, UInt(TIOCGWINSZ), &size) == 0, size.ws_col > 0 else { return nil }
        return Int(size.ws_col)
    }

    /// Writes `text` to standard output at once (one write, no buffering), so streamed tokens
    /// appear as they are produced.
    static func write(_ text: String) { writeAll(STDOUT_FILENO, text) }

    /// Writes `text` to standard error at once.
    static func writeError(_ text: String) { writeAll(STDERR_FILENO, text) }

    private static func writeAll(_ fd: Int32, _ text: String) {
        let bytes = Array(text.utf8)
        var offset = 0
        bytes.withUnsafeBytes { buffer in
            while offset < buffer.count {
                let n = systemWrite(fd, buffer.baseAddress! + offset, buffer.count - offset)
                if n > 0 { offset += n } else if n < 0 && errno == EINTR { continue } else { return }
            }
        }
    }
}
