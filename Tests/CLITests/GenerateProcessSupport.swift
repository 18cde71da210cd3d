import Foundation
import XCTest
import TestSupport

/// Runs the built `dsv2` binary (`Fixtures.dsv2Binary`) for the generate/chat tests.
struct DSV2Run {
    var status: Int32
    var stdout: String
    var stderr: String

    /// The single JSON object printed by `--json`.
    func json(file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: Data(stdout.utf8))
        return try XCTUnwrap(object as? [String: Any], "stdout is not one JSON object: \(stdout)", file: file, line: line)
    }

    /// One JSON object per non-empty line (`chat --json`).
    func jsonLines() throws -> [[String: Any]] {
        try stdout.split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    static func run(_ arguments: [String], stdin: String? = nil, environment: [String: String] = [:]) throws -> DSV2Run {
        let binary = Fixtures.dsv2Binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("build the binary first: swift build -c release --product dsv2 (\(binary.path))")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
        let out = Pipe(), err = Pipe(), input = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = input
        try process.run()
        // Read both pipes concurrently so a full pipe never blocks the child.
        let errBox = DataBox()
        let errReader = Thread { errBox.data = err.fileHandleForReading.readDataToEndOfFile() }
        errReader.start()
        if let stdin { input.fileHandleForWriting.write(Data(stdin.utf8)) }
        try input.fileHandleForWriting.close()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        while errReader.isExecuting || !errReader.isFinished { usleep(1000) }
        return DSV2Run(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                       stderr: String(decoding: errBox.data, as: UTF8.self))
    }
}

/// Holds what the stderr reader thread read (written once, read after the thread finished).
private final class DataBox: @unchecked Sendable {
    var data = Data()
}
