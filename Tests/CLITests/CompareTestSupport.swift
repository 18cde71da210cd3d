import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// Runs the built `dsv2` binary (`swift build -c release --product dsv2` first) for the compare,
/// dump and perplexity tests.
enum DSV2Process {
    struct Result {
        var status: Int32
        var stdout: String
        var stderr: String
        var stdoutData: Data
    }

    static func run(_ arguments: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Result {
        let binary = Fixtures.dsv2Binary
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw XCTSkip("dsv2 binary not built (swift build -c release --product dsv2): \(binary.path)")
        }
        // Output goes to files, not pipes: a full pipe would block the child.
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("dsv2-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let out = folder.appendingPathComponent("stdout"), err = folder.appendingPathComponent("stderr")
        FileManager.default.createFile(atPath: out.path, contents: nil)
        FileManager.default.createFile(atPath: err.path, contents: nil)
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        process.standardOutput = try FileHandle(forWritingTo: out)
        process.standardError = try FileHandle(forWritingTo: err)
        try process.run()
        process.waitUntilExit()
        let stdoutData = try Data(contentsOf: out)
        return Result(status: process.terminationStatus, stdout: String(decoding: stdoutData, as: UTF8.self),
                      stderr: String(decoding: try Data(contentsOf: err), as: UTF8.self), stdoutData: stdoutData)
    }
}

/// A fresh folder under the system temp dir, removed when the object goes away.
final class AnalysisScratch {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dsv2-cmp-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// A copy of a fixture model whose tensor `name` is multiplied by `factor` (stored as F32):
    /// the test-only way to put a known deviation into one layer of a real engine run. Every
    /// tensor computed before that weight is used stays bit-identical, everything after it moves.
    func perturbedModel(_ fixture: String, tensor name: String, factor: Float) throws -> String {
        let source = Fixtures.url(fixture)
        let folder = url.appendingPathComponent("\(fixture)-perturbed")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"),
                                         to: folder.appendingPathComponent("config.json"))
        let weights = try SafetensorsFile(url: source.appendingPathComponent("model.safetensors"))
        XCTAssertTrue(weights.contains(name), "no tensor \(name) in \(fixture)")
        var writer = SafetensorsWriter()
        for tensor in weights.tensorNames {
            let info = try weights.info(tensor)
            if tensor == name {
                try writer.add(tensor, floats: try weights.floats(tensor).map { $0 * factor }, shape: info.shape)
            } else {
                try writer.add(tensor, dtype: info.dtype, shape: info.shape, bytes: try weights.rawBytes(tensor))
            }
        }
        try writer.write(to: folder.appendingPathComponent("model.safetensors"))
        return folder.path
    }
}

extension XCTestCase {
    /// Decodes a `--json` output into a dictionary, failing the test when it is not valid JSON.
    func jsonObject(_ result: DSV2Process.Result, file: StaticString = #filePath, line: UInt = #line) throws -> [String: Any] {
        let object = try JSONSerialization.jsonObject(with: result.stdoutData)
        return try XCTUnwrap(object as? [String: Any], "not a JSON object: \(result.stdout)", file: file, line: line)
    }
}
