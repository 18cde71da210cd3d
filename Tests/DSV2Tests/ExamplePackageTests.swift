import DSV2
import Foundation
import TestSupport
import XCTest

/// The package under Examples/ (README, "Use as a library") builds against this checkout and runs
/// on tiny-dsv2. It is built in debug into `.build/examples`, which stays between runs: the first
/// build compiles the library (~2 min on 2 cores), later ones only what changed.
final class ExamplePackageTests: XCTestCase {
    func testExamplePackageBuildsAndRuns() throws {
        let root = Fixtures.repositoryRoot
        let scratch = root.appendingPathComponent(".build/examples")
        let build = try Self.run("/usr/bin/env", ["swift", "build", "--package-path", root.appendingPathComponent("Examples/Generate").path,
                                                  "--scratch-path", scratch.path, "-c", "debug"])
        XCTAssertEqual(build.status, 0, build.output)
        guard build.status == 0 else { return }
        let example = scratch.appendingPathComponent("debug/generate-example").path
        let run = try Self.run(example, [Fixtures.url("tiny-dsv2").path, "The best way to learn"])
        XCTAssertEqual(run.status, 0, run.output)
        // tiny-dsv2's generation_config.json asks for greedy decoding: the example prints what the
        // same session gives here.
        let expected = try Model.open(Fixtures.url("tiny-dsv2")).session(.quantized(), contextLength: 512)
            .generate("The best way to learn", request: GenerationRequest(maxTokens: 40))
        XCTAssertTrue(run.output.hasPrefix("The best way to learn" + expected.text + "\n"), run.output)
        XCTAssertTrue(run.output.contains("finish: \(expected.stopReason.finishReason), prompt tokens 7, completion tokens \(expected.generatedTokens)"),
                      run.output)
    }

    /// Runs a program to completion; stdout and stderr together.
    static func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let folder = TemporaryDirectory(prefix: "example")
        let log = folder.file("log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        process.standardOutput = handle
        process.standardError = handle
        try process.run()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: try Data(contentsOf: log), as: UTF8.self))
    }
}
