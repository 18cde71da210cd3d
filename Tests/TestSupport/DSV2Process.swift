import Foundation
import XCTest

/// Runs the built `dsv2` binary (`swift build -c release --product dsv2` first; `make test` does)
/// and captures its exit status and output. Skips the test when the binary is not built.
public enum DSV2Process {
    public struct Result {
        /// The exit code, or the signal number when `reason` is `.uncaughtSignal`.
        public var status: Int32
        public var reason: Process.TerminationReason
        public var stdout: String
        public var stderr: String
        public var stdoutData: Data
    }

    /// A `Process` for the binary with `arguments`, not started yet (e.g. to signal it), with
    /// `environment` added to this process's own.
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

    /// Runs the binary to completion with `input` on its standard input (none by default).
    public static func run(_ arguments: [String], input: Data? = nil,
                           environment: [String: String] = [:]) throws -> Result {
        let process = try launch(arguments, environment: environment)
        // Output goes through files, not pipes: a full pipe would block the child while we wait
        // on the other one.
        let folder = TemporaryDirectory(prefix: "dsv2-run")
        let out = folder.file("stdout"), err = folder.file("stderr")
        _ = FileManager.default.createFile(atPath: out.path, contents: nil)
        _ = FileManager.default.createFile(atPath: err.path, contents: nil)
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        if let input {
            let inputFile = folder.file("stdin")
            try input.write(to: inputFile)
            process.standardInput = try FileHandle(forReadingFrom: inputFile)
        }
        try process.run()
        process.waitUntilExit()
        let stdoutData = try Data(contentsOf: out)
        return Result(status: process.terminationStatus, reason: process.terminationReason, stdout: String(decoding: stdoutData, as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self), stdoutData: stdoutData)
    }
}
