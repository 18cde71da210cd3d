import Foundation
import Synchronization
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
/// A plain `sigaction` handler, run at once by whichever thread takes the signal: it only touches
/// lock-free atomics and calls `write`/`_exit` (async-signal-safe). A dispatch signal source would
/// work too, on Linux as well (see `InterruptCleanup`); this one needs no queue to run on.
enum InterruptMonitor {
    /// Installs the handler (idempotent).
    static func install() {
        guard installed.exchange(true, ordering: .relaxed) == false else { return }
        // Globals initialize lazily (swift_once, not signal-safe): touch them here, before any signal.
        generating.store(false, ordering: .relaxed)
        interrupted.store(false, ordering: .relaxed)
        var action = sigaction()
        action.__sigaction_handler.sa_handler = { _ in
            if generating.load(ordering: .relaxed) {
                interrupted.store(true, ordering: .relaxed)
            } else {
                let newline: [UInt8] = [0x0A]
                _ = newline.withUnsafeBytes { Glibc.write(STDERR_FILENO, $0.baseAddress, 1) }
                _exit(130)
            }
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        sigaction(SIGINT, &action, nil)
    }

    /// Runs `body` with Ctrl-C meaning "stop this generation"; `isInterrupted` turns true then.
    static func whileGenerating<T>(_ body: () throws -> T) rethrows -> T {
        interrupted.store(false, ordering: .relaxed)
        generating.store(true, ordering: .relaxed)
        defer { generating.store(false, ordering: .relaxed) }
        return try body()
    }

    /// Whether Ctrl-C was pressed during the current generation.
    static var isInterrupted: Bool { interrupted.load(ordering: .relaxed) }
}

private let installed = Atomic<Bool>(false)
private let generating = Atomic<Bool>(false)
private let interrupted = Atomic<Bool>(false)
