import DSV2Core
import DSV2Formats
import Foundation

/// One tensor's entry in a GGUF file's table.
public struct GGUFTensorInfo: Sendable, Equatable {
    public let name: String
    /// `ne`: the innermost axis first (ggml order).
    public let dimensions: [Int]
    public let type: GGMLType
    /// Offset from the start of the tensor data section.
    public let offset: Int
    public let byteCount: Int

    /// The PyTorch (row-major, outermost first) shape.
    public var shape: [Int] { dimensions.reversed() }
    public var elementCount: Int { dimensions.reduce(1, *) }
}

/// A parsed GGUF file: metadata and tensor table, checked against the file size before any
/// tensor data is touched. Every count, string length, dimension and offset is validated as it
/// is read, so a truncated or hostile file is an error naming the key or tensor, never a trap,
/// a SIGBUS or an allocation sized by an unchecked count.
public final class GGUFFile: @unchecked Sendable {
    public let path: String
    public let version: UInt32
    /// Metadata in file order.
    public let metadata: [(key: String, value: GGUFValue)]
    public let tensors: [GGUFTensorInfo]
    public let alignment: Int
    /// Absolute offset of the tensor data section.
    public let dataOffset: Int
    public let fileSize: Int
    private let keyIndex: [String: Int]
    private let tensorIndex: [String: Int]
    private let base: UnsafeRawPointer?
    /// Keeps `base` valid (the `MappedFile`, or the buffer a fuzz input was copied into).
    public let owner: AnyObject

    /// Maps and parses the file at `path`.
    public convenience init(path: String) throws {
        let file: MappedFile
        do { file = try MappedFile(path: path) } catch {
            throw GGUFError(path: path, "cannot be read (\(error))")
        }
        try self.init(bytes: try file.bytes(at: 0, count: file.size), owner: file, path: path)
    }

    /// Parses GGUF bytes kept alive by `owner`.
    public init(bytes: UnsafeRawBufferPointer, owner: AnyObject, path: String) throws {
        self.path = path
        self.owner = owner
        base = bytes.baseAddress
        fileSize = bytes.count
        var reader = ByteReader(bytes: bytes, path: path)
        reader.subject = "header"
        let magic = try reader.take(4, what: "the magic")
        guard Array(magic) == GGUFFormat.magic else {
            throw GGUFError(path: path, "not a GGUF file (the magic is \(Array(magic).map { String(format: "%02x", $0) }.joined()), expected \"GGUF\")")
        }
        version = try reader.u32("the version")
        guard GGUFFormat.versions.contains(version) else {
            throw GGUFError(path: path, subject: "header", "GGUF version \(version) is not supported (this build reads versions 2 and 3)")
        }
        let tensorCount = try reader.u64("the tensor count")
        let keyCount = try reader.u64("the metadata count")
        // The smallest metadata entry is 13 bytes (empty key, type, one-byte value); the smallest
        // tensor entry 28 (empty name, one dimension, type, offset).
        guard keyCount <= UInt64(reader.remaining / 13) else {
            throw GGUFError(path: path, subject: "header", "metadata count \(keyCount) cannot fit in the \(fileSize)-byte file")
        }
        guard tensorCount <= UInt64(reader.remaining / 28) else {
            throw GGUFError(path: path, subject: "header", "tensor count \(tensorCount) cannot fit in the \(fileSize)-byte file")
        }

        var metadata: [(key: String, value: GGUFValue)] = []
        var keyIndex: [String: Int] = [:]
        for i in 0..<Int(keyCount) {
            let key = try reader.entryName(i, of: "metadata", seen: keyIndex)
            let rawType = try reader.u32("the value type")
            guard let type = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path: path, subject: key, "unknown value type \(rawType)")
            }
            let value = try reader.value(of: type, nested: false)
            keyIndex[key] = metadata.count
            metadata.append((key, value))
        }
        self.metadata = metadata
        self.keyIndex = keyIndex

        var alignment = GGUFFormat.defaultAlignment
        if let index = keyIndex["general.alignment"] {
            guard let value = metadata[index].value.intValue, value > 0, value <= 1 << 20, value & (value - 1) == 0 else {
                throw GGUFError(path: path, subject: "general.alignment", "must be a power of two up to 1 MiB, got \(metadata[index].value.summary)")
            }
            alignment = value
        }
        self.alignment = alignment

        var infos: [(name: String, dimensions: [Int], type: GGMLType, offset: UInt64)] = []
        var tensorIndex: [String: Int] = [:]
        for i in 0..<Int(tensorCount) {
            let name = try reader.entryName(i, of: "tensor table", seen: tensorIndex)
            let count = try reader.u32("the dimension count")
            guard count >= 1, count <= GGUFFormat.maxDimensions else {
                throw GGUFError(path: path, subject: name, "has \(count) dimensions (1 to \(GGUFFormat.maxDimensions) allowed)")
            }
            var dimensions: [Int] = []
            for d in 0..<Int(count) {
                let ne = try reader.u64("dimension \(d)")
                guard ne >= 1, ne <= UInt64(1) << 40 else {
                    throw GGUFError(path: path, subject: name, "dimension \(d) is \(ne) (must be 1 … 2^40)")
                }
                dimensions.append(Int(ne))
            }
            let rawType = try reader.u32("the tensor type")
            guard let type = GGMLType(rawValue: rawType) else {
                throw GGUFError(path: path, subject: name, "unknown ggml tensor type \(rawType)")
            }
            let offset = try reader.u64("the data offset")
            tensorIndex[name] = infos.count
            infos.append((name, dimensions, type, offset))
        }
        self.tensorIndex = tensorIndex

        let headerEnd = reader.position
        dataOffset = (headerEnd + alignment - 1) / alignment * alignment
        guard dataOffset <= fileSize || infos.isEmpty else {
            throw GGUFError(path: path, "truncated: the tensor data would start at \(dataOffset), past the end of the \(fileSize)-byte file")
        }
        var tensors: [GGUFTensorInfo] = []
        for info in infos {
            let (elements, overflow) = info.dimensions.reduce((1, false)) { acc, ne in
                let (p, o) = acc.0.multipliedReportingOverflow(by: ne)
                return (p, acc.1 || o)
            }
            guard !overflow, elements <= 1 << 48 else {
                throw GGUFError(path: path, subject: info.name, "has too many elements (\(info.dimensions))")
            }
            guard info.dimensions[0] % info.type.blockSize == 0 else {
                throw GGUFError(path: path, subject: info.name, "its innermost dimension \(info.dimensions[0]) is not a multiple of the \(info.type) block size \(info.type.blockSize)")
            }
            let byteCount = elements / info.type.blockSize * info.type.bytesPerBlock
            guard info.offset % UInt64(alignment) == 0 else {
                throw GGUFError(path: path, subject: info.name, "data offset \(info.offset) is not a multiple of the alignment \(alignment)")
            }
            guard info.offset <= UInt64(fileSize), Int(info.offset) <= fileSize - dataOffset,
                  byteCount <= fileSize - dataOffset - Int(info.offset) else {
                throw GGUFError(path: path, subject: info.name, "data [\(info.offset), +\(byteCount)) lies beyond the end of the file (truncated?): the data section holds \(max(0, fileSize - dataOffset)) bytes")
            }
            tensors.append(GGUFTensorInfo(name: info.name, dimensions: info.dimensions, type: info.type,
                                          offset: Int(info.offset), byteCount: byteCount))
        }
        self.tensors = tensors
    }

    public func value(_ key: String) -> GGUFValue? { keyIndex[key].map { metadata[$0].value } }

    public func tensor(_ name: String) -> GGUFTensorInfo? { tensorIndex[name].map { tensors[$0] } }

    /// The bytes of a tensor of this file (bounds were checked when the table was read).
    public func bytes(of info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + dataOffset + info.offset, count: info.byteCount)
    }

    /// Parses `data` as a GGUF file and reads every tensor's values as the importer would: the
    /// entry point of a fuzz target. Throws on bad input; must never crash or hang. Returns the
    /// parsed file (its bytes are a copy of `data`).
    @discardableResult
    public static func fuzzEntry(_ data: Data) throws -> GGUFFile {
        let buffer = AlignedBuffer(byteCount: data.count)
        data.withUnsafeBytes { if let b = $0.baseAddress { buffer.pointer.copyMemory(from: b, byteCount: data.count) } }
        let file = try GGUFFile(bytes: buffer.bytes, owner: buffer, path: "fuzz input")
        _ = try? GGUFModelMetadata.modelConfig(file)
        _ = try? GGUFTokenizerFiles.tokenizerFiles(file)
        for info in file.tensors where info.type.isReadable && info.elementCount <= 1 << 20 {
            _ = try GGMLBlocks.dequantize(file.bytes(of: info), type: info.type, count: info.elementCount)
        }
        return file
    }
}

/// Bounds-checked little-endian reading through a byte buffer.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    var position = 0
    /// What is being read, for error messages (the key or tensor).
    var subject = ""

    init(bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes
        self.path = path
    }

    var remaining: Int { bytes.count - position }

    func truncated(_ what: String, _ count: Int) -> GGUFError {
        GGUFError(path: path, subject: subject, "truncated: \(what) needs \(count) bytes at offset \(position), the file has \(remaining) left")
    }

    mutating func take(_ count: Int, what: String) throws -> UnsafeRawBufferPointer {
        guard count >= 0, count <= remaining else { throw truncated(what, count) }
        defer { position += count }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + count)])
    }

    mutating func fixed<T: FixedWidthInteger>(_ type: T.Type, _ what: String) throws -> T {
        let raw = try take(MemoryLayout<T>.size, what: what)
        return T(littleEndian: raw.loadUnaligned(as: T.self))
    }

    mutating func u32(_ what: String) throws -> UInt32 { try fixed(UInt32.self, what) }
    mutating func u64(_ what: String) throws -> UInt64 { try fixed(UInt64.self, what) }

    mutating func string(_ what: String) throws -> String {
        let length = try u64("the length of \(what)")
        guard length <= UInt64(remaining) else {
            throw GGUFError(path: path, subject: subject, "\(what): string length \(length) runs past the end of the file (\(remaining) bytes left)")
        }
        let raw = try take(Int(length), what: what)
        guard let string = String(bytes: raw, encoding: .utf8) else {
            throw GGUFError(path: path, subject: subject, "\(what) is not valid UTF-8")
        }
        return string
    }

    /// The key or name of entry `index` of a table (`kind`), refused when it repeats; later errors
    /// name it.
    mutating func entryName(_ index: Int, of kind: String, seen: [String: Int]) throws -> String {
        subject = "\(kind) entry \(index)"
        let name = try string("its name")
        if !name.isEmpty { subject = name }
        guard seen[name] == nil else { throw GGUFError(path: path, subject: name, "appears twice in the \(kind)") }
        return name
    }

    mutating func value(of type: GGUFValueType, nested: Bool) throws -> GGUFValue {
        switch type {
        case .uint8: return .uint(UInt64(try fixed(UInt8.self, "a u8")), type)
        case .int8: return .int(Int64(try fixed(Int8.self, "an i8")), type)
        case .uint16: return .uint(UInt64(try fixed(UInt16.self, "a u16")), type)
        case .int16: return .int(Int64(try fixed(Int16.self, "an i16")), type)
        case .uint32: return .uint(UInt64(try fixed(UInt32.self, "a u32")), type)
        case .int32: return .int(Int64(try fixed(Int32.self, "an i32")), type)
        case .uint64: return .uint(try fixed(UInt64.self, "a u64"), type)
        case .int64: return .int(try fixed(Int64.self, "an i64"), type)
        case .float32: return .float(Double(Float(bitPattern: try fixed(UInt32.self, "an f32"))), type)
        case .float64: return .float(Double(bitPattern: try fixed(UInt64.self, "an f64")), type)
        case .bool:
            let byte = try fixed(UInt8.self, "a bool")
            guard byte <= 1 else { throw GGUFError(path: path, subject: subject, "bool value \(byte) is neither 0 nor 1") }
            return .bool(byte == 1)
        case .string: return .string(try string("the string value"))
        case .array:
            guard !nested else { throw GGUFError(path: path, subject: subject, "arrays of arrays are not supported") }
            let rawType = try u32("the array element type")
            guard let elementType = GGUFValueType(rawValue: rawType) else {
                throw GGUFError(path: path, subject: subject, "unknown array element type \(rawType)")
            }
            guard elementType != .array else { throw GGUFError(path: path, subject: subject, "arrays of arrays are not supported") }
            let count = try u64("the array length")
            let minimum = elementType.fixedSize ?? 8
            guard count <= UInt64(remaining / minimum) else {
                throw GGUFError(path: path, subject: subject, "array of \(count) \(elementType) values runs past the end of the file (\(remaining) bytes left)")
            }
            var items: [GGUFValue] = []
            items.reserveCapacity(Int(count))
            for _ in 0..<Int(count) { items.append(try value(of: elementType, nested: true)) }
            return .array(elementType, items)
        }
    }
}
