import Foundation

/// One tensor to write: its ggml name, dimensions (ne, innermost first), type and a producer of
/// exactly `byteCount` bytes (called once, when the tensor's turn comes, so only one tensor is
/// in memory at a time).
public struct GGUFTensorPlan {
    public var name: String
    public var dimensions: [Int]
    public var type: GGMLType
    public var produce: () throws -> [UInt8]

    public init(name: String, dimensions: [Int], type: GGMLType, produce: @escaping () throws -> [UInt8]) {
        self.name = name
        self.dimensions = dimensions
        self.type = type
        self.produce = produce
    }

    public var byteCount: Int { dimensions.reduce(1, *) / type.blockSize * type.bytesPerBlock }
}

/// Writes a GGUF version 3 file: header, metadata in the given order, tensor table, tensor data
/// aligned to 32 bytes (the default `general.alignment`). The file is written to a hidden
/// temporary file next to the target and renamed into place at the end, so a failed export
/// leaves nothing at the target path.
public enum GGUFWriter {
    public static let alignment = GGUFFormat.defaultAlignment

    public static func write(metadata: [(String, GGUFValue)], tensors: [GGUFTensorPlan], to url: URL,
                             progress: ((Int, String) -> Void)? = nil) throws {
        var head = Data()
        head.append(contentsOf: GGUFFormat.magic)
        append(&head, GGUFFormat.writtenVersion)
        append(&head, UInt64(tensors.count))
        append(&head, UInt64(metadata.count))
        for (key, value) in metadata {
            appendString(&head, key)
            append(&head, value.type.rawValue)
            appendValue(&head, value)
        }
        var offset = 0
        for tensor in tensors {
            precondition(tensor.dimensions[0] % tensor.type.blockSize == 0, "GGUFWriter: \(tensor.name) is not whole blocks")
            appendString(&head, tensor.name)
            append(&head, UInt32(tensor.dimensions.count))
            for ne in tensor.dimensions { append(&head, UInt64(ne)) }
            append(&head, tensor.type.rawValue)
            append(&head, UInt64(offset))
            offset += padded(tensor.byteCount)
        }
        head.append(contentsOf: [UInt8](repeating: 0, count: padded(head.count) - head.count))

        let temporary = url.deletingLastPathComponent()
            .appendingPathComponent(".\(url.lastPathComponent).tmp-\(ProcessInfo.processInfo.processIdentifier)")
        _ = FileManager.default.createFile(atPath: temporary.path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: temporary.path) else {
            throw GGUFError(path: url.path, "cannot create \(temporary.path)", writing: true)
        }
        var finished = false
        defer {
            try? handle.close()
            if !finished { try? FileManager.default.removeItem(at: temporary) }
        }
        do {
            try handle.write(contentsOf: head)
            for (index, tensor) in tensors.enumerated() {
                var bytes = try tensor.produce()
                guard bytes.count == tensor.byteCount else {
                    throw GGUFError(path: url.path, subject: tensor.name, "produced \(bytes.count) bytes, expected \(tensor.byteCount)")
                }
                bytes.append(contentsOf: [UInt8](repeating: 0, count: padded(bytes.count) - bytes.count))
                try handle.write(contentsOf: bytes)
                progress?(index + 1, tensor.name)
            }
            try handle.synchronize()
            try handle.close()
            if FileManager.default.fileExists(atPath: url.path) { try FileManager.default.removeItem(at: url) }
            try FileManager.default.moveItem(at: temporary, to: url)
            finished = true
        } catch let error as GGUFError {
            throw error
        } catch {
            throw GGUFError(path: url.path, "cannot be written (\(error.localizedDescription))", writing: true)
        }
    }

    static func padded(_ n: Int) -> Int { (n + alignment - 1) / alignment * alignment }

    static func append<T: FixedWidthInteger>(_ data: inout Data, _ value: T) {
        withUnsafeBytes(of: value.littleEndian) { data.append(contentsOf: $0) }
    }

    static func appendString(_ data: inout Data, _ string: String) {
        append(&data, UInt64(string.utf8.count))
        data.append(contentsOf: string.utf8)
    }

    static func appendValue(_ data: inout Data, _ value: GGUFValue) {
        switch value {
        case let .uint(v, type):
            switch type {
            case .uint8: append(&data, UInt8(truncatingIfNeeded: v))
            case .uint16: append(&data, UInt16(truncatingIfNeeded: v))
            case .uint32: append(&data, UInt32(truncatingIfNeeded: v))
            default: append(&data, v)
            }
        case let .int(v, type):
            switch type {
            case .int8: append(&data, Int8(truncatingIfNeeded: v))
            case .int16: append(&data, Int16(truncatingIfNeeded: v))
            case .int32: append(&data, Int32(truncatingIfNeeded: v))
            default: append(&data, v)
            }
        case let .float(v, type):
            if type == .float32 { append(&data, Float(v).bitPattern) } else { append(&data, v.bitPattern) }
        case let .bool(v): append(&data, UInt8(v ? 1 : 0))
        case let .string(s): appendString(&data, s)
        case let .array(type, items):
            append(&data, type.rawValue)
            append(&data, UInt64(items.count))
            for item in items { appendValue(&data, item) }
        }
    }
}
