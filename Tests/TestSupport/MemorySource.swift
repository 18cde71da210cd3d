import DSV2Core
import DSV2Formats
import Foundation

/// A `WeightSource` over tensors held in memory (synthetic tests).
public final class MemorySource: WeightSource {
    public var configJSON = Data("{}".utf8)
    public var tokenizerFiles: [String: Data] = [:]
    public var tensors: [(name: String, type: WeightType, shape: [Int], bytes: [UInt8])] = []
    private var buffers: [String: AlignedBuffer] = [:]

    public var tensorNames: [String] { tensors.map(\.name) }
    public init() {}

    public func add(_ name: String, type: WeightType, shape: [Int], bytes: [UInt8]) {
        precondition(bytes.count == StoredTensor.byteCount(shape: shape, type: type))
        tensors.append((name, type, shape, bytes))
        let buffer = AlignedBuffer(byteCount: bytes.count)
        bytes.withUnsafeBytes { if $0.count > 0 { buffer.pointer.copyMemory(from: $0.baseAddress!, byteCount: $0.count) } }
        buffers[name] = buffer
    }

    /// bf16-like data: random normal-ish floats of small magnitude, stored as `type`.
    public func addFloats(_ name: String, type: WeightType, shape: [Int], seed: UInt64) {
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

    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        tensors.first { $0.name == name }.map { ($0.type, $0.shape) }
    }

    public func tensor(_ name: String) throws -> StoredTensor {
        guard let t = tensors.first(where: { $0.name == name }), let buffer = buffers[name] else {
            throw WeightSourceError.missingTensor(source: "memory", tensor: name)
        }
        return StoredTensor(name: name, type: t.type, shape: t.shape, bytes: buffer.bytes, owner: buffer)
    }
}

public func bytesOf(_ tensor: StoredTensor) -> [UInt8] { Array(tensor.bytes) }

