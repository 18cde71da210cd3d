import DSV2Core
import Foundation
import TestSupport
import XCTest

extension TemporaryDirectory {
    /// The path of `name` inside the folder, as a command line takes it.
    func path(_ name: String) -> String { file(name).path }

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
