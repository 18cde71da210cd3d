import DSV2Container
import DSV2Core
import DSV2Formats
import Foundation
import TestSupport
import XCTest

/// Damaged or hostile models through the binary (issue 15): each is refused with a message
/// naming the file and the key or tensor, a non-zero exit and nothing left behind.
final class HostileModelTests: XCTestCase {
    private func dsv2(_ arguments: [String]) throws -> DSV2Process.Result { try DSV2Process.run(arguments) }

    /// Asserts a failed run whose stderr names every word, and that `folder` holds only `keep`.
    private func assertRefused(_ result: DSV2Process.Result, naming words: [String], folder: TemporaryDirectory, keep: Set<String>,
                               file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertNotEqual(result.status, 0, result.stderr, file: file, line: line)
        XCTAssertFalse(result.stderr.contains("Fatal error") || result.stderr.contains("Stack dump"), result.stderr, file: file, line: line)
        for word in words { XCTAssertTrue(result.stderr.contains(word), "missing \"\(word)\" in: \(result.stderr)", file: file, line: line) }
        XCTAssertEqual(Set(try FileManager.default.contentsOfDirectory(atPath: folder.url.path)), keep, file: file, line: line)
    }

    /// Writes a raw container of lite-greedy in its stored bf16, with `config` changes applied
    /// to the embedded config.json and `damage` applied to one tensor's bytes. The checksums are
    /// those of the bytes written: a foreign or buggy writer, not corruption after writing.
    private func writeContainer(_ url: URL, config change: (inout [String: Any]) -> Void = { _ in },
                                damage: (name: String, body: (UnsafeMutableRawBufferPointer) -> Void)? = nil) throws {
        let source = try HFCheckpointSource(folder: Fixtures.url("lite-greedy"))
        var config = try XCTUnwrap(try JSONSerialization.jsonObject(with: source.configJSON) as? [String: Any])
        change(&config)
        let writer = try ContainerWriter(destination: url, overwrite: true)
        try writer.addFile(name: "config.json", data: try JSONSerialization.data(withJSONObject: config))
        for name in source.tensorNames {
            var tensor = try source.tensor(name)
            if let damage, damage.name == name {
                let copy = AlignedBuffer(byteCount: tensor.bytes.count)
                copy.pointer.copyMemory(from: tensor.bytes.baseAddress!, byteCount: tensor.bytes.count)
                damage.body(copy.mutableBytes)
                tensor = StoredTensor(name: name, type: tensor.type, shape: tensor.shape, bytes: copy.bytes, owner: copy)
            }
            try writer.add(TensorCodec.encode(tensor, options: .none))
        }
        _ = try writer.finish(quantization: "bf16", provenance: ContainerProvenance(sourceFormat: "test", sourceName: "lite-greedy", files: []))
    }

    /// A raw container with one flipped byte is refused at load by name (it used to run with
    /// exit 0); `--no-verify` skips the check and runs.
    func testCorruptRawContainerIsRefusedAtLoad() throws {
        let folder = TemporaryDirectory()
        let model = folder.file("model.dsv2")
        let convert = try dsv2(["convert", Fixtures.url("tiny-dsv2").path, "-o", model.path, "--quant", "q8", "--quiet"])
        XCTAssertEqual(convert.status, 0, convert.stderr)
        let victim = try XCTUnwrap(try ContainerReader(path: model.path).metadata.tensors.first { $0.name.hasSuffix("experts.3.up_proj.weight") })
        try flipByte(model, at: victim.offset + 100)   // in the quants plane: finite whatever the flip
        let out = folder.file("out.safetensors")
        let dump = try dsv2(["dump", "--model", model.path, "--engine", "quantized", "--ids", "1,2,3", "-o", out.path])
        try assertRefused(dump, naming: [model.path, victim.name, "checksum"], folder: folder, keep: ["model.dsv2"])
        let generate = try dsv2(["generate", "--model", model.path, "--prompt", "Hello", "-n", "2", "--temp", "0"])
        try assertRefused(generate, naming: [model.path, victim.name, "checksum"], folder: folder, keep: ["model.dsv2"])
        let unchecked = try dsv2(["dump", "--model", model.path, "--engine", "quantized", "--ids", "1,2,3", "-o", out.path, "--no-verify"])
        XCTAssertEqual(unchecked.status, 0, unchecked.stderr)
    }

    /// A NaN with a valid checksum fails `verify` and loading, naming tensor, row and column.
    func testNonFiniteWeightWithValidChecksumFailsVerifyAndLoad() throws {
        let folder = TemporaryDirectory()
        let model = folder.file("nan.dsv2")
        let victim = CheckpointNames.layer(1).kvBProj   // bf16 [4·(16 + 16), 32]
        try writeContainer(model, damage: (victim, { bytes in bytes.storeBytes(of: UInt16(0x7FC0), toByteOffset: (20 * 32 + 9) * 2, as: UInt16.self) }))
        let verify = try dsv2(["verify", model.path])
        try assertRefused(verify, naming: [model.path, victim, "row 20, column 9", "1 problem"], folder: folder, keep: ["nan.dsv2"])
        let dump = try dsv2(["dump", "--model", model.path, "--engine", "quantized", "--ids", "1,2", "-o", folder.file("o.safetensors").path])
        try assertRefused(dump, naming: [model.path, victim, "row 20, column 9"], folder: folder, keep: ["nan.dsv2"])
    }

    /// A container whose embedded config overflows a size, or whose table has a tensor its config
    /// does not expect (a tied lm_head), is refused naming the key or tensor and the container.
    func testHostileEmbeddedConfigAndTable() throws {
        let folder = TemporaryDirectory()
        let cases: [(String, (inout [String: Any]) -> Void, [String])] = [
            ("heads.dsv2", { $0["num_attention_heads"] = 1 << 62 }, ["num_attention_heads", "at most"]),
            ("layers.dsv2", { $0["num_hidden_layers"] = 1 << 40 }, ["num_hidden_layers", "at most"]),
            ("mscale.dsv2", { config in
                var scaling = config["rope_scaling"] as! [String: Any]
                scaling["mscale"] = -1e308
                config["rope_scaling"] = scaling
            }, ["rope_scaling.mscale"]),
            ("tied.dsv2", { $0["tie_word_embeddings"] = true }, [CheckpointNames.lmHead, "tie_word_embeddings"]),
            ("noshared.dsv2", { $0["n_shared_experts"] = 0 }, ["shared_experts", "n_shared_experts is 0"]),
        ]
        for (name, change, words) in cases {
            let model = folder.file(name)
            try writeContainer(model, config: change)
            for arguments in [["dump", "--model", model.path, "--engine", "quantized", "--ids", "1,2", "-o", folder.file("o.safetensors").path],
                              ["verify", model.path],
                              ["convert", model.path, "-o", folder.file("c.dsv2").path, "--quant", "q8"]] {
                let keep = Set(try FileManager.default.contentsOfDirectory(atPath: folder.url.path))
                try assertRefused(try dsv2(arguments), naming: [model.path] + words, folder: folder, keep: keep)
            }
        }
    }

    /// A Hugging Face folder with a NaN: both engines refuse it at load, and `convert` refuses it
    /// for the type it already has (bf16 → bf16 used to copy it), writing nothing.
    func testNonFiniteWeightInACheckpoint() throws {
        let folder = TemporaryDirectory()
        let hf = folder.file("hf")
        try copyFixture("lite-greedy", to: hf)
        let victim = CheckpointNames.layer(3).expertGateProj(7)   // bf16 [32, 64]
        let checkpoint = try SafetensorsCheckpoint(url: Fixtures.url("lite-greedy"))
        var writer = SafetensorsWriter()
        for name in checkpoint.tensorNames {
            var bytes = Array(try checkpoint.rawBytes(name))
            if name == victim { bytes[(5 * 64 + 60) * 2 + 1] = 0xFF; bytes[(5 * 64 + 60) * 2] = 0x80 }   // −infinity
            try bytes.withUnsafeBytes { try writer.add(name, dtype: try checkpoint.info(name).dtype, shape: try checkpoint.info(name).shape, bytes: $0) }
        }
        try writer.write(to: hf.appendingPathComponent("model.safetensors"))
        let keep: Set<String> = ["hf"]
        for engine in ["reference", "quantized"] {
            let dump = try dsv2(["dump", "--model", hf.path, "--engine", engine, "--ids", "1,2", "-o", folder.file("o.safetensors").path])
            try assertRefused(dump, naming: [victim, "row 5, column 60"], folder: folder, keep: keep)
        }
        let convert = try dsv2(["convert", hf.path, "-o", folder.file("out.dsv2").path, "--quant", "bf16"])
        try assertRefused(convert, naming: [victim, "row 5, column 60"], folder: folder, keep: keep)
    }

    /// `synth --shard-size` beyond any file size, infinite or not a number is a usage error.
    func testShardSizeOutOfRangeIsAUsageError() throws {
        let folder = TemporaryDirectory()
        for size in ["99999999999G", "inf", "nan", "1e400", "0.1", "-5G"] {
            let result = try dsv2(["synth", "--preset", "v2-lite", "--layers", "1", "--experts", "8", "--format", "hf",
                                   "--shard-size", size, "-o", folder.file("out").path])
            try assertRefused(result, naming: ["--shard-size"], folder: folder, keep: [])
        }
    }
}
