import Foundation

/// Where one tensor lives and what it holds.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// The file holding the tensor.
    public let file: URL
    /// Absolute byte offset of the first element in `file`.
    public let byteOffset: Int
    public let byteCount: Int

    public var elementCount: Int { shape.reduce(1, *) }
}

/// One memory-mapped `.safetensors` file.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON
/// `{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {…}}`, then the
/// data section, offsets relative to its start. The whole header is validated in `init` before
/// any tensor byte is touched: sane length, valid JSON, known dtypes, sizes equal
/// shape × dtype size, ranges inside the file and not overlapping. A truncated or malformed file
/// is therefore a `SafetensorsError` naming the file and tensor, never a SIGBUS.
public final class SafetensorsFile: @unchecked Sendable {
    public let url: URL
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    /// Tensor names in data-offset order.
    public let tensorNames: [String]
    private let infos: [String: SafetensorsTensorInfo]
    private let mapped: MappedFile

    /// Largest header accepted (the real V2 shards have headers of a few hundred KB).
    public static let maxHeaderBytes = 100 << 20

    public init(url: URL) throws {
        self.url = url
        let path = url.path
        do { mapped = try MappedFile(path: path) } catch let error as MappedFileError {
            throw SafetensorsError.cannotOpen(file: path, reason: "\(error)")
        }
        guard mapped.size >= 8 else {
            throw SafetensorsError.badHeader(file: path, reason: "file is \(mapped.size) bytes, shorter than the 8-byte header length")
        }
        let lengthBytes = try mapped.bytes(at: 0, count: 8)
        let headerLength64 = UInt64(littleEndian: lengthBytes.loadUnaligned(as: UInt64.self))
        guard headerLength64 >= 2, headerLength64 <= UInt64(Self.maxHeaderBytes) else {
            throw SafetensorsError.badHeader(file: path, reason: "header length \(headerLength64) is not sane")
        }
        let headerLength = Int(headerLength64)
        guard headerLength <= mapped.size - 8 else {
            throw SafetensorsError.badHeader(file: path, reason: "header length \(headerLength) exceeds the file (\(mapped.size) bytes): truncated")
        }
        let headerBytes = try mapped.bytes(at: 8, count: headerLength)
        let json: Any
        do {
            json = try JSONSerialization.jsonObject(with: Data(headerBytes), options: [])
        } catch {
            throw SafetensorsError.badHeader(file: path, reason: "header is not valid JSON")
        }
        guard let object = json as? [String: Any] else {
            throw SafetensorsError.badHeader(file: path, reason: "header is not a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = mapped.size - dataStart

        var metadata: [String: String] = [:]
        var parsed: [(info: SafetensorsTensorInfo, begin: Int, end: Int)] = []
        for (name, value) in object {
            if name == "__metadata__" {
                guard let map = value as? [String: Any] else {
                    throw SafetensorsError.badHeader(file: path, reason: "__metadata__ is not an object")
                }
                for (k, v) in map {
                    guard let s = v as? String else {
                        throw SafetensorsError.badHeader(file: path, reason: "__metadata__ value for \"\(k)\" is not a string")
                    }
                    metadata[k] = s
                }
                continue
            }
            func bad(_ reason: String) -> SafetensorsError { .badTensorEntry(file: path, tensor: name, reason: reason) }
            guard let entry = value as? [String: Any] else { throw bad("entry is not an object") }
            guard let dtypeString = entry["dtype"] as? String else { throw bad("dtype is missing") }
            guard let dtype = SafetensorsDType(rawValue: dtypeString) else { throw bad("unknown dtype \"\(dtypeString)\"") }
            guard let shapeValues = entry["shape"] as? [Any], let shape = Self.integers(shapeValues),
                  shape.allSatisfy({ $0 >= 0 }) else { throw bad("shape is not a list of non-negative integers") }
            guard let offsetValues = entry["data_offsets"] as? [Any], let offsets = Self.integers(offsetValues),
                  offsets.count == 2 else { throw bad("data_offsets is not a pair of integers") }
            let (begin, end) = (offsets[0], offsets[1])
            guard begin >= 0, end >= begin else { throw bad("data_offsets [\(begin), \(end)] are not an increasing range") }
            var elements = 1
            for d in shape {
                let (product, overflow) = elements.multipliedReportingOverflow(by: d)
                guard !overflow else { throw bad("shape \(shape) overflows") }
                elements = product
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, bytes == end - begin else {
                throw bad("data_offsets [\(begin), \(end)] hold \(end - begin) bytes but shape \(shape) × \(dtype.rawValue) needs \(bytes)")
            }
            guard end <= dataSize else {
                throw bad("data_offsets [\(begin), \(end)] point past the end of the data section (\(dataSize) bytes): the file is truncated or corrupt")
            }
            let info = SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, file: url,
                                             byteOffset: dataStart + begin, byteCount: bytes)
            parsed.append((info, begin, end))
        }
        parsed.sort { ($0.begin, $0.end, $0.info.name) < ($1.begin, $1.end, $1.info.name) }
        for i in parsed.indices.dropFirst() {
            let previous = parsed[i - 1], current = parsed[i]
            // Empty tensors occupy no bytes and cannot overlap anything.
            if current.begin < previous.end, current.end > current.begin, previous.end > previous.begin {
                throw SafetensorsError.overlappingTensors(file: path, first: previous.info.name, second: current.info.name)
            }
        }
        self.metadata = metadata
        self.tensorNames = parsed.map(\.info.name)
        self.infos = Dictionary(uniqueKeysWithValues: parsed.map { ($0.info.name, $0.info) })
    }

    private static func integers(_ values: [Any]) -> [Int]? {
        var result: [Int] = []
        result.reserveCapacity(values.count)
        for v in values {
            guard let n = v as? Int else { return nil }
            result.append(n)
        }
        return result
    }

    public func contains(_ name: String) -> Bool { infos[name] != nil }

    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = infos[name] else { throw SafetensorsError.missingTensor(tensor: name, checkpoint: url.path) }
        return info
    }

    /// The tensor's bytes, valid while this file object is alive.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let info = try info(name)
        return try mapped.bytes(at: info.byteOffset, count: info.byteCount)
    }

    /// The tensor widened to fp32 (F32, F16, BF16, F64).
    public func floats(_ name: String) throws -> [Float] {
        let info = try info(name)
        guard info.dtype.isFloatingPoint else {
            throw SafetensorsError.unsupportedDType(tensor: name, file: url.path, dtype: info.dtype.rawValue, wanted: "fp32")
        }
        let bytes = try rawBytes(name)
        let count = info.elementCount
        return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            ElementConversion.widen(bytes, dtype: info.dtype, into: buffer.baseAddress!, count: count)
            initialized = count
        }
    }

    /// The tensor as Int32 (I32, or I64 values that fit).
    public func int32s(_ name: String) throws -> [Int32] {
        let info = try info(name)
        let bytes = try rawBytes(name)
        switch info.dtype {
        case .i32:
            return (0..<info.elementCount).map { Int32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * $0, as: Int32.self)) }
        case .i64:
            var out: [Int32] = []
            out.reserveCapacity(info.elementCount)
            for i in 0..<info.elementCount {
                let v = Int64(littleEndian: bytes.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self))
                guard let narrowed = Int32(exactly: v) else {
                    throw SafetensorsError.badTensorEntry(file: url.path, tensor: name, reason: "value \(v) does not fit in Int32")
                }
                out.append(narrowed)
            }
            return out
        default:
            throw SafetensorsError.unsupportedDType(tensor: name, file: url.path, dtype: info.dtype.rawValue, wanted: "Int32")
        }
    }

    /// Advise the kernel that the file will be read front to back (converter streaming).
    public func adviseSequential() { mapped.adviseSequential() }
}
