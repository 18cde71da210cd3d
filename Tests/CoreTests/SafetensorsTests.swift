import DSV2Core
import DSV2Reference
import Foundation
import TestSupport
import XCTest

/// Reading, writing and rejecting safetensors files. Every bad input must be a typed error whose
/// message names the file and the tensor, never a crash.
final class SafetensorsTests: XCTestCase {
    func testWriterRoundTripWithMetadata() throws {
        let dir = TemporaryDirectory()
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "note": "round trip"]
        try writer.add("a", floats: [1, -2.5, 3, 4e-8, .greatestFiniteMagnitude, 0], shape: [2, 3])
        try writer.add("ids", int32s: [7, -1, Int32.max], shape: [3])
        try writer.add("empty", floats: [], shape: [0, 4])
        XCTAssertThrowsError(try writer.add("a", floats: [1], shape: [1]))
        XCTAssertThrowsError(try writer.add("b", floats: [1, 2], shape: [3]))
        let url = dir.file("out.safetensors")
        try writer.write(to: url)
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.url.path), ["out.safetensors"], "temp file left behind")

        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(file.metadata, writer.metadata)
        XCTAssertEqual(Set(file.tensorNames), ["a", "ids", "empty"])
        XCTAssertEqual(try file.floats("a"), [1, -2.5, 3, 4e-8, .greatestFiniteMagnitude, 0])
        XCTAssertEqual(try file.info("a").shape, [2, 3])
        XCTAssertEqual(try file.int32s("ids"), [7, -1, Int32.max])
        XCTAssertEqual(try file.floats("empty"), [])
        XCTAssertThrowsError(try file.int32s("a"))
        XCTAssertThrowsError(try file.floats("ids"))
        let dataStart = 8 + Int(try Data(contentsOf: url).prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) })
        XCTAssertEqual(dataStart % 8, 0, "header padded to 8 bytes")
    }

    func testHalfPrecisionWidensExactly() throws {
        let dir = TemporaryDirectory()
        // BF16 0x3FC0 = 1.5, 0xC020 = −2.5; F16 0x3E00 = 1.5, 0xC100 = −2.5, 0x0001 = 2^−24.
        let url = try dir.writeSafetensors("h.safetensors",
            header: #"{"b":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"h":{"dtype":"F16","shape":[3],"data_offsets":[4,10]},"__metadata__":{"format":"pt"}}"#,
            data: [0xC0, 0x3F, 0x20, 0xC0, 0x00, 0x3E, 0x00, 0xC1, 0x01, 0x00])
        let file = try SafetensorsFile(url: url)
        XCTAssertEqual(try file.floats("b"), [1.5, -2.5])
        XCTAssertEqual(try file.floats("h"), [1.5, -2.5, Float(1) / Float(1 << 24)])
    }

    private func assertError(_ expression: @autoclosure () throws -> Any, mentions words: [String],
                             file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertThrowsError(try expression(), file: file, line: line) { error in
            XCTAssertTrue(error is SafetensorsError, "untyped error \(error)", file: file, line: line)
            let message = "\(error)"
            for word in words {
                XCTAssertTrue(message.contains(word), "\"\(message)\" does not mention \(word)", file: file, line: line)
            }
        }
    }

    func testTruncatedFilesAreErrors() throws {
        let dir = TemporaryDirectory()
        let original = try Data(contentsOf: Fixtures.url("lite-greedy/model.safetensors"))
        // Truncated inside the data section: the last tensors point past the end.
        let inData = dir.file("data.safetensors")
        try original.prefix(original.count / 2).write(to: inData)
        assertError(try SafetensorsFile(url: inData), mentions: [inData.path, "tensor \"", "past the end"])
        // Truncated inside the header.
        let inHeader = dir.file("header.safetensors")
        try original.prefix(100).write(to: inHeader)
        assertError(try SafetensorsFile(url: inHeader), mentions: [inHeader.path, "truncated"])
        // Shorter than the length field.
        let tiny = dir.file("tiny.safetensors")
        try original.prefix(5).write(to: tiny)
        assertError(try SafetensorsFile(url: tiny), mentions: [tiny.path])
        // A checkpoint folder with a truncated model.safetensors.
        let folder = dir.file("ckpt")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try original.prefix(original.count - 10).write(to: folder.appendingPathComponent("model.safetensors"))
        assertError(try SafetensorsCheckpoint(url: folder), mentions: ["model.safetensors", "past the end"])
    }

    func testMalformedHeadersAreErrors() throws {
        let dir = TemporaryDirectory()
        let past = try dir.writeSafetensors("past.safetensors",
            header: #"{"w":{"dtype":"F32","shape":[100],"data_offsets":[0,400]}}"#, data: [UInt8](repeating: 0, count: 16))
        assertError(try SafetensorsFile(url: past), mentions: [past.path, "\"w\"", "past the end"])

        let overlap = try dir.writeSafetensors("overlap.safetensors",
            header: #"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}}"#,
            data: [UInt8](repeating: 0, count: 24))
        assertError(try SafetensorsFile(url: overlap), mentions: [overlap.path, "\"a\"", "\"b\"", "overlap"])

        let size = try dir.writeSafetensors("size.safetensors",
            header: #"{"s":{"dtype":"BF16","shape":[3],"data_offsets":[0,8]}}"#, data: [UInt8](repeating: 0, count: 8))
        assertError(try SafetensorsFile(url: size), mentions: [size.path, "\"s\"", "needs 6"])

        let dtype = try dir.writeSafetensors("dtype.safetensors",
            header: #"{"d":{"dtype":"F8_E9","shape":[1],"data_offsets":[0,1]}}"#, data: [0])
        assertError(try SafetensorsFile(url: dtype), mentions: [dtype.path, "\"d\"", "F8_E9"])

        let json = try dir.writeSafetensors("json.safetensors", header: #"{"x": [1, 2"#, data: [])
        assertError(try SafetensorsFile(url: json), mentions: [json.path, "JSON"])

        let huge = dir.file("huge.safetensors")
        var bytes = [UInt8](repeating: 0xFF, count: 8)
        bytes += [UInt8](repeating: 0x20, count: 8)
        try Data(bytes).write(to: huge)
        assertError(try SafetensorsFile(url: huge), mentions: [huge.path, "header length"])

        let reversed = try dir.writeSafetensors("reversed.safetensors",
            header: #"{"r":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}}"#, data: [UInt8](repeating: 0, count: 8))
        assertError(try SafetensorsFile(url: reversed), mentions: [reversed.path, "\"r\""])
    }

    /// Copies a fixture checkpoint with `transform` applied to its tensors (nil drops one).
    private func rewrittenCheckpoint(_ fixture: String, in dir: TemporaryDirectory,
                                     transform: (String, [Float], [Int]) -> (values: [Float], shape: [Int])?) throws -> URL {
        let source = Fixtures.url(fixture)
        let folder = dir.file(fixture)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: folder.appendingPathComponent("config.json"))
        let checkpoint = try SafetensorsCheckpoint(url: source)
        var writer = SafetensorsWriter()
        for name in checkpoint.tensorNames {
            if let (values, shape) = transform(name, try checkpoint.floats(name), try checkpoint.info(name).shape) {
                try writer.add(name, floats: values, shape: shape)
            }
        }
        try writer.write(to: folder.appendingPathComponent("model.safetensors"))
        return folder
    }

    func testMissingTensorAndWrongShapeAreErrors() throws {
        let dir = TemporaryDirectory()
        let missingName = CheckpointNames.layer(1).kvBProj
        let missing = try rewrittenCheckpoint("lite-greedy", in: dir) { name, values, shape in
            name == missingName ? nil : (values, shape)
        }
        XCTAssertThrowsError(try ReferenceModel(checkpoint: missing)) { error in
            XCTAssertEqual(error as? SafetensorsError, .missingTensor(tensor: missingName, checkpoint: missing.appendingPathComponent("model.safetensors").path + " (expected by config.json)"))
            XCTAssertTrue("\(error)".contains(missingName))
        }

        let dir2 = TemporaryDirectory()
        let wrongName = CheckpointNames.layer(2).expertUpProj(3)
        let wrong = try rewrittenCheckpoint("lite-greedy", in: dir2) { name, values, shape in
            name == wrongName ? (values, [shape[1], shape[0]]) : (values, shape)
        }
        XCTAssertThrowsError(try ReferenceModel(checkpoint: wrong)) { error in
            guard case let .wrongShape(tensor, file, expected, found)? = error as? SafetensorsError else {
                return XCTFail("expected wrongShape, got \(error)")
            }
            XCTAssertEqual(tensor, wrongName)
            XCTAssertTrue(file.hasSuffix("model.safetensors"))
            XCTAssertEqual(expected, [32, 64])
            XCTAssertEqual(found, [64, 32])
        }
    }

    /// A NaN or infinity in a weight is an error at load naming the tensor, file, row and column,
    /// with the weights widened (fp32) or left in the mapping; an inf in a norm vector too.
    func testNonFiniteWeightIsAnErrorAtLoad() throws {
        let victim = CheckpointNames.layer(2).expertUpProj(3)   // [32, 64]
        for (name, value, index) in [(victim, Float.nan, 5 * 64 + 7), (CheckpointNames.layer(0).inputLayernorm, -Float.infinity, 9)] {
            let dir = TemporaryDirectory()
            let folder = try rewrittenCheckpoint("lite-greedy", in: dir) { tensor, values, shape in
                guard tensor == name else { return (values, shape) }
                var changed = values
                changed[index] = value
                return (changed, shape)
            }
            // Both tensors are 64 wide: the norm vector is one row.
            let expectedError = SafetensorsError.nonFinite(tensor: name, file: folder.appendingPathComponent("model.safetensors").path,
                                                           row: index / 64, column: index % 64)
            for storage in WeightStorage.allCases {
                XCTAssertThrowsError(try ReferenceModel(checkpoint: folder, weightStorage: storage)) { error in
                    XCTAssertEqual(error as? SafetensorsError, expectedError, "\(storage)")
                    XCTAssertTrue("\(error)".contains(name) && "\(error)".contains("NaN or infinity"), "\(error)")
                }
            }
        }
    }

    /// A tensor the config does not describe is an error in the reference as in the quantized
    /// engine: lm_head.weight with tie_word_embeddings true, shared experts with n_shared_experts 0.
    func testUnexpectedTensorsAreErrors() throws {
        for (key, value, tensor) in [("tie_word_embeddings", true as Any, CheckpointNames.lmHead),
                                     ("n_shared_experts", 0 as Any, CheckpointNames.layer(1).sharedDownProj)] {
            let dir = TemporaryDirectory()
            let folder = try rewrittenCheckpoint("lite-greedy", in: dir) { _, values, shape in (values, shape) }
            let configURL = folder.appendingPathComponent("config.json")
            var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(contentsOf: configURL)) as? [String: Any])
            config[key] = value
            try JSONSerialization.data(withJSONObject: config).write(to: configURL)
            XCTAssertThrowsError(try ReferenceModel(checkpoint: folder)) { error in
                guard case let .badTensorEntry(file, name, reason)? = error as? SafetensorsError else { return XCTFail("\(error)") }
                XCTAssertEqual(name, tensor)
                XCTAssertTrue(file.hasSuffix("model.safetensors"), file)
                XCTAssertTrue(reason.contains(key), reason)
            }
        }
    }

    /// A sharded copy (index.json + two shards, F16/BF16/F32 mixed as real checkpoints are not,
    /// but the reader must not care) gives the same logits as the single file.
    func testShardedCheckpointMatchesSingleFile() throws {
        let dir = TemporaryDirectory()
        let source = Fixtures.url("v2-grouped")
        let checkpoint = try SafetensorsCheckpoint(url: source)
        let folder = dir.file("sharded")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: source.appendingPathComponent("config.json"), to: folder.appendingPathComponent("config.json"))
        var shards = [SafetensorsWriter(), SafetensorsWriter()]
        var weightMap: [String: String] = [:]
        for (i, name) in checkpoint.tensorNames.enumerated() {
            let shard = i % 2
            let info = try checkpoint.info(name)
            try shards[shard].add(name, dtype: info.dtype, shape: info.shape, bytes: try checkpoint.rawBytes(name))
            weightMap[name] = "model-0000\(shard + 1)-of-00002.safetensors"
        }
        for (i, shard) in shards.enumerated() {
            try shard.write(to: folder.appendingPathComponent("model-0000\(i + 1)-of-00002.safetensors"))
        }
        let index = try JSONSerialization.data(withJSONObject: ["metadata": ["total_size": 0], "weight_map": weightMap])
        try index.write(to: folder.appendingPathComponent("model.safetensors.index.json"))

        let sharded = try SafetensorsCheckpoint(url: folder)
        XCTAssertEqual(sharded.files.count, 2)
        XCTAssertEqual(sharded.tensorNames, checkpoint.tensorNames)
        let ids: [Int32] = [3, 1, 4, 1, 5, 9, 2, 6]
        let a = try ReferenceModel(checkpoint: source).forward(tokens: ids, logits: .all)
        let b = try ReferenceModel(checkpoint: folder).forward(tokens: ids, logits: .all)
        XCTAssertEqual(a, b)

        // An index naming a shard that does not exist, or a tensor its shard lacks.
        weightMap["extra.tensor"] = "model-00001-of-00002.safetensors"
        try JSONSerialization.data(withJSONObject: ["weight_map": weightMap]).write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        assertError(try SafetensorsCheckpoint(url: folder), mentions: ["extra.tensor", "model-00001-of-00002.safetensors"])
        weightMap["extra.tensor"] = "model-00003-of-00002.safetensors"
        try JSONSerialization.data(withJSONObject: ["weight_map": weightMap]).write(to: folder.appendingPathComponent("model.safetensors.index.json"))
        assertError(try SafetensorsCheckpoint(url: folder), mentions: ["model-00003-of-00002.safetensors", "index"])
    }

    func testEmptyFolderIsAnError() throws {
        let dir = TemporaryDirectory()
        assertError(try SafetensorsCheckpoint(url: dir.url), mentions: [dir.url.path, "model.safetensors"])
        assertError(try SafetensorsCheckpoint(url: dir.file("nope")), mentions: ["nope"])
    }
}
