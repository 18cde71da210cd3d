import XCTest
import TestSupport
@testable import DSV2Converter
import DSV2Core
import DSV2Formats

/// Bad checkpoints: every error names the file and the tensor or field, and nothing is written.
final class BadInputTests: XCTestCase {
    let fixture = "lite-greedy"

    /// Opening `folder` as a conversion source fails; returns the message.
    func openError(_ folder: URL, file: StaticString = #filePath, line: UInt = #line) -> String {
        let message = describe { _ = try Converter.openSource(folder) }
        XCTAssertNotNil(message, "expected an error", file: file, line: line)
        return message ?? ""
    }

    /// Rewrites the fixture's tensors into `folder`, letting `change` alter each one (nil: drop it).
    func rewrite(into folder: URL, shards: Int = 1,
                 change: (String, SafetensorsDType, [Int], [UInt8]) -> (SafetensorsDType, [Int], [UInt8])?) throws {
        try copyFixture(fixture, to: folder)
        try FileManager.default.removeItem(at: folder.appendingPathComponent("model.safetensors"))
        let checkpoint = try SafetensorsCheckpoint(url: Fixtures.url(fixture))
        var writers = [SafetensorsWriter](repeating: SafetensorsWriter(), count: shards)
        var weightMap: [String: String] = [:]
        for (index, name) in checkpoint.tensorNames.enumerated() {
            let info = try checkpoint.info(name)
            guard let (dtype, shape, bytes) = change(name, info.dtype, info.shape, Array(try checkpoint.rawBytes(name))) else { continue }
            try bytes.withUnsafeBytes { try writers[index % shards].add(name, dtype: dtype, shape: shape, bytes: $0) }
            weightMap[name] = shards == 1 ? "model.safetensors" : String(format: "model-%05d-of-%05d.safetensors", index % shards + 1, shards)
        }
        if shards == 1 {
            try writers[0].write(to: folder.appendingPathComponent("model.safetensors"))
        } else {
            for s in 0..<shards {
                try writers[s].write(to: folder.appendingPathComponent(String(format: "model-%05d-of-%05d.safetensors", s + 1, shards)))
            }
            let index = try JSONSerialization.data(withJSONObject: ["metadata": [:], "weight_map": weightMap])
            try index.write(to: folder.appendingPathComponent(SafetensorsCheckpoint.indexFileName))
        }
    }

    func testShardedCheckpointConvertsLikeTheSingleFile() throws {
        let folder = TemporaryDirectory()
        try rewrite(into: folder.url, shards: 3) { ($1, $2, $3) }
        let (sharded, provenance) = try Converter.openSource(folder.url)
        XCTAssertEqual(provenance.files.filter { $0.name.hasPrefix("model-") }.count, 3)
        let (single, _) = try Converter.openSource(Fixtures.url(fixture))
        for name in single.tensorNames {
            XCTAssertTrue(bytesOf(try sharded.tensor(name)) == bytesOf(try single.tensor(name)), name)
        }
    }

    func testMissingShardIsNamed() throws {
        let folder = TemporaryDirectory()
        try rewrite(into: folder.url, shards: 2) { ($1, $2, $3) }
        try FileManager.default.removeItem(at: folder.file("model-00002-of-00002.safetensors"))
        let message = openError(folder.url)
        XCTAssertTrue(message.contains("model-00002-of-00002.safetensors") && message.contains(SafetensorsCheckpoint.indexFileName), message)
    }

    func testTruncatedShardIsNamed() throws {
        let folder = TemporaryDirectory()
        try rewrite(into: folder.url, shards: 2) { ($1, $2, $3) }
        let shard = folder.file("model-00001-of-00002.safetensors")
        let size = (try FileManager.default.attributesOfItem(atPath: shard.path)[.size] as! NSNumber).intValue
        truncateFile(shard, to: size - 100)
        let message = openError(folder.url)
        XCTAssertTrue(message.contains(shard.path), message)
    }

    func testWrongShapeIsNamed() throws {
        let folder = TemporaryDirectory()
        let victim = "model.layers.1.self_attn.kv_a_proj_with_mqa.weight"
        try rewrite(into: folder.url) { name, dtype, shape, bytes in
            name == victim ? (dtype, [shape[1], shape[0]], bytes) : (dtype, shape, bytes)
        }
        let message = openError(folder.url)
        XCTAssertTrue(message.contains(victim) && message.contains("model.safetensors") && message.contains("shape"), message)
    }

    func testWrongDTypeIsNamed() throws {
        let folder = TemporaryDirectory()
        let victim = "model.layers.0.input_layernorm.weight"
        try rewrite(into: folder.url) { name, dtype, shape, bytes in
            name == victim ? (.i16, shape, bytes) : (dtype, shape, bytes)
        }
        let message = openError(folder.url)
        XCTAssertTrue(message.contains(victim) && message.contains("I16"), message)
    }

    func testMissingTensorIsNamed() throws {
        let folder = TemporaryDirectory()
        let victim = "model.layers.1.mlp.experts.3.down_proj.weight"
        try rewrite(into: folder.url) { name, dtype, shape, bytes in name == victim ? nil : (dtype, shape, bytes) }
        let message = openError(folder.url)
        XCTAssertTrue(message.contains(victim), message)
    }

    func testConfigThatDoesNotMatchTheTensors() throws {
        // More layers than the checkpoint has: the first missing tensor is named.
        let folder = TemporaryDirectory()
        try copyFixture(fixture, to: folder.url)
        let configURL = folder.file("config.json")
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as! [String: Any]
        let layers = config["num_hidden_layers"] as! Int
        config["num_hidden_layers"] = layers + 1
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        var message = openError(folder.url)
        XCTAssertTrue(message.contains("model.layers.\(layers).") && message.contains("config.json"), message)
        // Fewer layers: the first tensor the config does not expect is named.
        config["num_hidden_layers"] = layers - 1
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        message = openError(folder.url)
        XCTAssertTrue(message.contains("model.layers.\(layers - 1).") && message.contains("not expected by config.json"), message)
        // A bad field is named too.
        config["num_hidden_layers"] = "three"
        try JSONSerialization.data(withJSONObject: config).write(to: configURL)
        message = openError(folder.url)
        XCTAssertTrue(message.contains("config.json") && message.contains("num_hidden_layers"), message)
    }

    func testUnwritableOutputFolderLeavesNothing() throws {
        let folder = TemporaryDirectory()
        let (source, provenance) = try Converter.openSource(Fixtures.url(fixture))
        let blocker = folder.file("file")
        _ = FileManager.default.createFile(atPath: blocker.path, contents: Data())
        let target = blocker.appendingPathComponent("model.dsv2")
        let message = describe {
            _ = try Converter.convert(source: source, provenance: provenance, to: target, options: ConversionOptions(policy: .q8))
        }
        XCTAssertTrue(message?.contains(target.path) == true, message ?? "no error")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.url.path), ["file"])
    }

    func testFailingTensorAbortsWithoutOutput() throws {
        final class Failing: WeightSource {
            let base: WeightSource
            init(_ base: WeightSource) { self.base = base }
            var configJSON: Data { base.configJSON }
            var tokenizerFiles: [String: Data] { base.tokenizerFiles }
            var tensorNames: [String] { base.tensorNames }
            func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? { base.tensorInfo(name) }
            func tensor(_ name: String) throws -> StoredTensor {
                if name == base.tensorNames[7] { throw WeightSourceError.missingTensor(source: "failing", tensor: name) }
                return try base.tensor(name)
            }
        }
        let folder = TemporaryDirectory()
        let (source, provenance) = try Converter.openSource(Fixtures.url(fixture))
        let target = folder.file("model.dsv2")
        let message = describe {
            _ = try Converter.convert(source: Failing(source), provenance: provenance, to: target,
                                      options: ConversionOptions(policy: .q4, compression: .zstd, threads: 2))
        }
        XCTAssertTrue(message?.contains(source.tensorNames[7]) == true, message ?? "no error")
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.url.path), [])
    }

    /// A NaN or infinity in the checkpoint stops the conversion for every target type, bf16 → bf16
    /// (passed through) included, naming the tensor, row and column; nothing is left behind.
    func testNonFiniteWeightStopsEveryConversion() throws {
        let victim = CheckpointNames.layer(2).expertDownProj(5)   // [64, 32] bf16
        for bits in [UInt16(0x7FC0), 0xFF80] {   // NaN, −infinity
            let folder = TemporaryDirectory()
            try rewrite(into: folder.file("hf")) { name, dtype, shape, bytes in
                guard name == victim else { return (dtype, shape, bytes) }
                var changed = bytes
                let index = 10 * 32 + 17
                changed[2 * index] = UInt8(bits & 0xFF)
                changed[2 * index + 1] = UInt8(bits >> 8)
                return (dtype, shape, changed)
            }
            for preset in QuantizationPolicy.presetNames {
                let (source, provenance) = try Converter.openSource(folder.file("hf"))
                let output = TemporaryDirectory()
                let message = describe {
                    _ = try Converter.convert(source: source, provenance: provenance, to: output.file("out.dsv2"),
                                              options: ConversionOptions(policy: QuantizationPolicy.preset(preset)!, threads: 2))
                }
                XCTAssertTrue(message?.contains(victim) == true && message?.contains("row 10, column 17") == true,
                              "\(preset): \(message ?? "no error")")
                XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: output.url.path), [], preset)
            }
        }
    }
}
