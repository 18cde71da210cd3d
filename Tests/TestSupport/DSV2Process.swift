import Foundation
import XCTest

/// The one way tests run a program: the built `dsv2` binary (`swift build -c release --product
/// dsv2` first; `make test` does) or, with `program:`, any executable. Output goes to files, not
/// pipes, so a child never blocks on a full pipe while the test waits for the other stream.
/// Every wait has a timeout: a hung child is killed and the test fails instead of hanging.
public enum DSV2Process {
    /// How a finished program ended and what it wrote.
    public struct Result {
        /// The exit status, or the signal number when `signalled`.
        public var status: Int32
        /// Whether the program was ended by a signal it did not handle.
        public var signalled: Bool
        public var stdout: String
        public var stderr: String
        public var stdoutData: Data

        /// The single JSON object a `--json` run prints.
        public func json(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
            let object = try JSONSerialization.jsonObject(with: stdoutData)
            return try XCTUnwrap(object as? [String: Any], "stdout is not one JSON object: \(stdout)", file: file, line: line)
        }

        /// One JSON object per non-empty line (`chat --json`).
        public func jsonLines(file: StaticString = #filePath, line: UInt = #line) throws -> [[String: Any]] {
            try stdout.split(separator: "\n").map {
                try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any],
                              "not a JSON object: \($0)", file: file, line: line)
            }
        }
    }

    /// A program that hung (it has been killed) or exited before writing what a test waited for.
    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// Longest a program may run before it counts as hung: far beyond any single run of the
    /// suite, even on a busy 2-core machine.
    public static let defaultTimeout: Double = 600

    /// A `Process` for the binary with `arguments`, not started yet (e.g. to signal it or give it
    /// a terminal), with `environment` added to this process's own.
    public static func launch(_ arguments: [String], environment: [String: String] = [:]) throws -> Process {
        let binary = Fixtures.dsv2Binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("dsv2 binary not built (swift build -c release --product dsv2): \(binary.path)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if !environment.isEmpty {
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        }
        return process
    }

    /// `run` with `input` bytes (UTF-8 text) on standard input.
    public static func run(_ arguments: [String], input: Data?, environment: [String: String] = [:]) throws -> Result {
        try run(arguments, stdin: input.map { String(decoding: $0, as: UTF8.self) }, environment: environment)
    }

    /// Runs the program to completion with `stdin` as its standard input (empty by default, never
    /// the test's own) and `environment` added to this process's environment.
    public static func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
                           program: URL? = nil, timeout: Double = defaultTimeout) throws -> Result {
        let running = try start(arguments, stdin: stdin ?? "", environment: environment, program: program)
        return try running.finish(timeout: timeout)
    }

    /// Starts the program and returns at once, to talk to it while it runs. `stdin` nil leaves its
    /// standard input open for `Running.write`; a string is its whole input.
    public static func start(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:],
                             program: URL? = nil) throws -> Running {
        let executable = program ?? Fixtures.dsv2Binary
        guard FileManager.default.isExecutableFile(atPath: executable.path) else {
            if program == nil {
                throw XCTSkip("dsv2 binary not built (swift build -c release --product dsv2): \(executable.path)")
            }
            throw XCTSkip("\(executable.path) is not an executable")
        }
        return try Running(executable: executable, arguments: arguments, stdin: stdin, environment: environment)
    }

    /// A started program. Its output accumulates in files that `stdout`/`stderr` read back.
    public final class Running {
        public let arguments: [String]
        private let process = Process()
        private let folder = TemporaryDirectory(prefix: "dsv2-run")
        private let outURL: URL, errURL: URL
        private let input: Pipe?
        private let exited = DispatchSemaphore(value: 0)

        init(executable: URL, arguments: [String], stdin: String?, environment: [String: String]) throws {
            self.arguments = arguments
            process.executableURL = executable
            process.arguments = arguments
            if !environment.isEmpty {
                process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            }
            outURL = folder.file("stdout")
            errURL = folder.file("stderr")
            _ = FileManager.default.createFile(atPath: outURL.path, contents: nil)
            _ = FileManager.default.createFile(atPath: errURL.path, contents: nil)
            process.standardOutput = try FileHandle(forWritingTo: outURL)
            process.standardError = try FileHandle(forWritingTo: errURL)
            if let stdin {
                let inputURL = folder.file("stdin")
                try Data(stdin.utf8).write(to: inputURL)
                process.standardInput = try FileHandle(forReadingFrom: inputURL)
                input = nil
            } else {
                let pipe = Pipe()
                process.standardInput = pipe
                input = pipe
            }
            let exited = self.exited
            process.terminationHandler = { _ in exited.signal() }
            try process.run()
        }

        private var command: String { ([process.executableURL?.lastPathComponent ?? "?"] + arguments).joined(separator: " ") }

        public var isRunning: Bool { process.isRunning }
        public var processIdentifier: Int32 { process.processIdentifier }
        /// What the program has written to standard output / error so far.
        public var stdout: String { String(decoding: (try? Data(contentsOf: outURL)) ?? Data(), as: UTF8.self) }
        public var stderr: String { String(decoding: (try? Data(contentsOf: errURL)) ?? Data(), as: UTF8.self) }

        /// Writes `text` to the program's standard input (started with `stdin: nil`).
        public func write(_ text: String) {
            precondition(input != nil, "write: the program was started with a fixed stdin")
            input?.fileHandleForWriting.write(Data(text.utf8))
        }

        /// Sends signal `number` (SIGINT, SIGTERM, SIGKILL, …) to the program.
        public func signal(_ number: Int32) {
            kill(process.processIdentifier, number)
        }

        /// Waits until the program has written `text` (anything at all when nil) to standard error,
        /// or to standard output with `onStdout`. Throws when it exits first or `timeout` passes.
        public func waitForOutput(_ text: String? = nil, onStdout: Bool = false, timeout: Double = defaultTimeout) throws {
            let deadline = Date().addingTimeInterval(timeout)
            func seen() -> Bool {
                let written = onStdout ? stdout : stderr
                return text.map { written.contains($0) } ?? !written.isEmpty
            }
            while !seen() {
                if !process.isRunning && !seen() {
                    throw Failure(description: "\(command) exited before writing \(text ?? "anything"); stderr:\n\(stderr)")
                }
                if Date() > deadline {
                    let partial = stderr
                    _ = try? finish(timeout: 0)
                    throw Failure(description: "\(command) wrote no \(text ?? "output") within \(timeout) s and was killed; stderr:\n\(partial)")
                }
                usleep(10_000)
            }
        }

        /// Waits for the program to end (closing its standard input first) and returns how it
        /// ended. After `timeout` seconds it is killed and `Failure` is thrown.
        public func finish(timeout: Double = defaultTimeout) throws -> Result {
            try? input?.fileHandleForWriting.close()
            if exited.wait(timeout: .now() + timeout) == .timedOut {
                kill(process.processIdentifier, SIGKILL)
                exited.wait()
                throw Failure(description: "\(command) did not finish within \(timeout) s and was killed; stderr:\n\(stderr)")
            }
            exited.signal()   // later calls return at once
            process.waitUntilExit()
            let stdoutData = (try? Data(contentsOf: outURL)) ?? Data()
            return Result(status: process.terminationStatus, signalled: process.terminationReason == .uncaughtSignal,
                          stdout: String(decoding: stdoutData, as: UTF8.self), stderr: stderr, stdoutData: stdoutData)
        }
    }
}
