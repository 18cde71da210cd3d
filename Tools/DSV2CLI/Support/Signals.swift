import DSV2
import Foundation
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// SIGINT, SIGTERM and SIGHUP for every command: the temporary files being written are removed
/// (`TemporaryOutput`), registered exit actions run (the chat restores the terminal), and the
/// program exits with 128 + the signal (130 for Ctrl-C). While a reply is generated, SIGINT only
/// asks the generation to stop (`whileGenerating`). SIGWINCH marks the terminal as resized.
///
/// The handler itself only touches lock-free atomics and writes the signal number to a pipe
/// (both async-signal-safe); a watcher thread reads the pipe and does the rest with ordinary
/// calls (removing a folder is not signal-safe). A `sigaction` handler, not a dispatch signal
/// source: on Linux those only see signals blocked in every thread, and the BLAS and worker-pool
/// threads do not block them.
enum Signals {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var exitActions: [() -> Void] = []
    nonisolated(unsafe) private static var commandName = "dsv2"

    /// Installs the handlers and starts the watcher (once, before the command runs).
    static func install(command: String) {
        lock.lock(); commandName = command; lock.unlock()
        guard installed.exchange(true, ordering: .relaxed) == false else { return }
        // Globals initialize lazily (swift_once is not signal-safe): touch them before any signal.
        generating.store(false, ordering: .relaxed)
        interrupted.store(false, ordering: .relaxed)
        resized.store(false, ordering: .relaxed)
        var fds: [Int32] = [0, 0]
        guard pipe(&fds) == 0 else { return }
        _ = fcntl(fds[1], F_SETFL, O_NONBLOCK)
        pipeWriter.store(fds[1], ordering: .relaxed)
        let reader = fds[0]
        let watcher = Thread { watch(reader) }
        watcher.name = "dsv2 signals"
        watcher.start()

        var action = sigaction()
        action.__sigaction_handler.sa_handler = { number in
            if number == SIGWINCH { resized.store(true, ordering: .relaxed); return }
            if number == SIGINT, generating.load(ordering: .relaxed) {
                interrupted.store(true, ordering: .relaxed)
                return
            }
            var byte = UInt8(truncatingIfNeeded: number)
            _ = write(pipeWriter.load(ordering: .relaxed), &byte, 1)
        }
        sigemptyset(&action.sa_mask)
        action.sa_flags = SA_RESTART
        for number in [SIGINT, SIGTERM, SIGHUP, SIGWINCH] { sigaction(number, &action, nil) }
    }

    /// `action` runs before the program exits on a signal; returns a token for `removeExitAction`.
    @discardableResult
    static func addExitAction(_ action: @escaping () -> Void) -> Int {
        lock.lock(); defer { lock.unlock() }
        exitActions.append(action)
        return exitActions.count - 1
    }

    /// Replaces the action of `token` by nothing.
    static func removeExitAction(_ token: Int) {
        lock.lock(); defer { lock.unlock() }
        if token < exitActions.count { exitActions[token] = {} }
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

    /// True once after each terminal resize (SIGWINCH).
    static func takeResized() -> Bool { resized.exchange(false, ordering: .relaxed) }

    /// The watcher: on the first signal, clean up and leave.
    private static func watch(_ reader: Int32) {
        var byte: UInt8 = 0
        while true {
            let n = read(reader, &byte, 1)
            if n == 1 { break }
            if n < 0 && errno == EINTR { continue }
            return
        }
        let number = Int32(byte)
        lock.lock(); let actions = exitActions; let name = commandName; lock.unlock()
        for action in actions { action() }
        let removed = TemporaryOutput.removeRegistered()
        let what = number == SIGINT ? "interrupted" : number == SIGTERM ? "terminated (SIGTERM)" : "hung up (SIGHUP)"
        var message = "\n\(name): \(what)"
        if !removed.isEmpty { message += "; removed \(removed.joined(separator: ", "))" }
        Terminal.writeError(message + "\n")
        _exit(128 + number)
    }
}

private let installed = Atomic<Bool>(false)
private let generating = Atomic<Bool>(false)
private let interrupted = Atomic<Bool>(false)
private let resized = Atomic<Bool>(false)
private let pipeWriter = Atomic<Int32>(-1)
