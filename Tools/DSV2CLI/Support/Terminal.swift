import Foundation
#if canImport(Glibc)
import Glibc
private let systemWrite = Glibc.write
#elseif canImport(Darwin)
import Darwin
private let systemWrite = Darwin.write
#endif

/// Terminal I/O for the interactive commands: TTY detection, unbuffered streaming writes, and
/// Ctrl-C handling that stops a reply instead of killing the program.
enum Terminal {
    /// Whether standard input is a terminal (then `chat` shows a prompt marker).
    static var stdinIsTTY: Bool { isatty(STDIN_FILENO) == 1 }
    static var stdoutIsTTY: Bool { isatty(STDOUT_FILENO) == 1 }
    static var stderrIsTTY: Bool { isatty(STDERR_FILENO) == 1 }

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

/// Ctrl-C (SIGINT) while a reply is being generated sets a flag that the generation loop polls
/// once per token; Ctrl-C at any other time exits with status 130, as a shell expects.
///
/// The handler runs on a dispatch queue (signal delivery itself is ignored), so it may take a lock
/// and write; the generation thread reads the flag under the same lock.
final class InterruptMonitor: @unchecked Sendable {
    static let shared = InterruptMonitor()

    private let lock = NSLock()
    private var generating = false
    private var interrupted = false
    private var source: DispatchSourceSignal?

    /// Installs the handler (idempotent).
    func install() {
        lock.lock(); defer { lock.unlock() }
        guard source == nil else { return }
        signal(SIGINT, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: SIGINT, queue: DispatchQueue.global())
        source.setEventHandler { [weak self] in self?.handleSignal() }
        source.resume()
        self.source = source
    }

    /// Runs `body` with Ctrl-C meaning "stop this generation"; `isInterrupted` turns true then.
    func whileGenerating<T>(_ body: () throws -> T) rethrows -> T {
        lock.lock(); generating = true; interrupted = false; lock.unlock()
        defer { lock.lock(); generating = false; lock.unlock() }
        return try body()
    }

    /// Whether Ctrl-C was pressed during the current generation.
    var isInterrupted: Bool {
        lock.lock(); defer { lock.unlock() }
        return interrupted
    }

    private func handleSignal() {
        lock.lock()
        let stopReply = generating
        if stopReply { interrupted = true }
        lock.unlock()
        if !stopReply {
            Terminal.writeError("\n")
            exit(130)
        }
    }
}
