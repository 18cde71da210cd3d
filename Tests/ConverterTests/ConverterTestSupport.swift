import Foundation
import XCTest
import TestSupport
import DSV2Quantized
import DSV2Reference
@testable import DSV2Converter

/// A `WeightSource` over tensors held in memory (synthetic tests).
final class MemorySource: WeightSource {
    var configJSON = Data("{}".utf8)
    var tokenizerFiles: [String: Data] = [:]
    var tensors: [(name: String, type: WeightType, shape: [Int], bytes: [UInt8])] = []
    private var buffers: [String: AlignedBuffer] = [:]

    var tensorNames: [String] { tensors.map(\.name) }

    func add(_ name: String, type: WeightType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == StoredTensor.byteCount(shape: shape, type: type))
        tensors.append((name, type, shape, bytes))
        let buffer = AlignedBuffer(byteCount: bytes.count)
        bytes.withUnsafeBytes { if $0.count > 0 { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        buffers[name] = buffer
    }

    /// bf16-like data: random normal-ish floats of small magnitude, stored as `type`.
    func addFloats(_ name: String, type: WeightType, shape: [Int], seed: UInt64) {
        var rng = SplitMix64(seed: seed)
        let count = shape.reduce(1, *)
        let floats = (0..<count).map { _ in Float(rng.normal() * 0.02) }
        let (rows, columns) = StoredTensor.rowsAndColumns(shape)
        var bytes = [UInt8](repeating: 0, count: type.byteCount(rows: rows, columns: columns))
        floats.withUnsafeBufferPointer { f in
            bytes.withUnsafeMutableBytes { ScalarQuantization.quantize(f.baseAddress!, rows: rows, columns: columns, as: type, into: $0.baseAddress!) }
        }
        add(name, type: type, shape: shape, bytes: bytes)
    }

    func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        tensors.first { $0.name == name }.map { ($0.type, $0.shape) }
    }

    func tensor(_ name: String) throws -> StoredTensor {
        guard let t = tensors.first(where: { $0.name == name }), let buffer = buffers[name] else {
            throw WeightSourceError.missingTensor(source: "memory", tensor: name)
        }
        return StoredTensor(name: name, type: t.type, shape: t.shape, bytes: buffer.bytes, owner: buffer)
    }
}

func bytesOf(_ tensor: StoredTensor) -> [UInt8] { Array(tensor.bytes) }

/// Copies a fixture checkpoint folder (config, weights, tokenizer files) to `folder`.
func copyFixture(_ name: String, to folder: URL) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let source = Fixtures.url(name)
    for file in ["config.json", "model.safetensors"] + HFCheckpointSource.tokenizerFileNames {
        let from = source.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: from.path) {
            try FileManager.default.copyItem(at: from, to: folder.appendingPathComponent(file))
        }
    }
}

/// Flips one bit of the byte at `offset`.
func flipByte(_ url: URL, at offset: Int) throws {
    let handle = try FileHandle(forUpdating: url)
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let byte = handle.readData(ofLength: 1)[0]
    try handle.seek(toOffset: UInt64(offset))
    handle.write(Data([byte ^ 0x10]))
}

func truncateFile(_ url: URL, to size: Int) {
    XCTAssertEqual(truncate(url.path, off_t(size)), 0)
}

/// The error's description, for asserting that it names the file and tensor.
func describe(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return "\(error)" }
}
