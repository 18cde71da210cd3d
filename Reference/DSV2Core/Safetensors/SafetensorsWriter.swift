import Foundation

/// Builds a `.safetensors` file in memory and writes it atomically (temp file + rename).
///
/// Tensors are stored in insertion order; the header is padded with spaces to a multiple of 8
/// bytes so every tensor starts 8-byte aligned.
public struct SafetensorsWriter {
    private var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], begin: Int, end: Int)] = []
    private var data = Data()
    /// Written as `__metadata__`.
    public var metadata: [String: String] = [:]

    public init() {}

    public var tensorNames: [String] { entries.map(\.name) }

    /// Adds a tensor from raw little-endian bytes.
    public mutating func add(_ name: String, dtype: SafetensorsDType, shape: [Int], bytes: UnsafeRawBufferPointer) throws {
        guard name != "__metadata__", !entries.contains(where: { $0.name == name }) else {
            throw SafetensorsError.badTensorEntry(file: "(writer)", tensor: name, reason: "duplicate or reserved name")
        }
        guard shape.allSatisfy({ $0 >= 0 }), shape.reduce(1, *) * dtype.byteSize == bytes.count else {
            throw SafetensorsError.badTensorEntry(file: "(writer)", tensor: name, reason: "shape \(shape) × \(dtype.rawValue) does not match \(bytes.count) bytes")
        }
        let begin = data.count
        data.append(contentsOf: bytes)
        entries.append((name, dtype, shape, begin, data.count))
    }

    public mutating func add(_ name: String, floats: [Float], shape: [Int]) throws {
        try floats.withUnsafeBytes { try add(name, dtype: .f32, shape: shape, bytes: $0) }
    }

    public mutating func add(_ name: String, int32s: [Int32], shape: [Int]) throws {
        try int32s.withUnsafeBytes { try add(name, dtype: .i32, shape: shape, bytes: $0) }
    }

    /// The complete file contents.
    public func serialized() throws -> Data {
        var header: [String: Any] = [:]
        for e in entries {
            header[e.name] = ["dtype": e.dtype.rawValue, "shape": e.shape, "data_offsets": [e.begin, e.end]] as [String: Any]
        }
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while json.count % 8 != 0 { json.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + json.count + data.count)
        var length = UInt64(json.count).littleEndian
        withUnsafeBytes(of: &length) { out.append(contentsOf: $0) }
        out.append(json)
        out.append(data)
        return out
    }

    /// Writes to `url` through a temporary file in the same folder, renamed into place at the end.
    public func write(to url: URL) throws {
        let bytes = try serialized()
        try AtomicFile.write(bytes, to: url)
    }
}

/// Writes a file by temp + rename (`TemporaryOutput`) so a crash never leaves a half-written
/// output, and any failure (a full disk) removes the temporary.
public enum AtomicFile {
    public static func write(_ bytes: Data, to url: URL) throws {
        let temporary = TemporaryOutput.begin(url)
        do {
            try bytes.write(to: temporary)
        } catch {
            TemporaryOutput.discard(temporary)
            throw SafetensorsError.writeFailed(file: url.path, reason: error.localizedDescription)
        }
        guard rename(temporary.path, url.path) == 0 else {
            let reason = String(cString: strerror(errno))
            TemporaryOutput.discard(temporary)
            throw SafetensorsError.writeFailed(file: url.path, reason: reason)
        }
        TemporaryOutput.end(temporary)
    }
}
