import Foundation
import DSV2Core
import DSV2Formats

/// How tensors are stored in a container being written.
public struct CompressionOptions: Sendable, Equatable {
    /// zstd-compress tensors (false: every tensor raw and aligned, mmap-ready).
    public var zstd: Bool
    /// zstd level (1–19; 3 is the default: higher levels gain ≤ 0.05 in ratio at many times the time).
    public var level: Int32
    /// Group the bytes of float tensors into planes before zstd (lossless modes).
    public var bytePlanes: Bool

    public init(zstd: Bool, level: Int32 = 3, bytePlanes: Bool = true) {
        self.zstd = zstd
        self.level = level
        self.bytePlanes = bytePlanes
    }

    public static let none = CompressionOptions(zstd: false)
    public static let zstd = CompressionOptions(zstd: true)
}

/// A tensor ready to be appended to a container: its table entry (offset filled in by the
/// writer) and its stored bytes.
public struct EncodedTensor: @unchecked Sendable {
    public var entry: ContainerTensorEntry
    /// Stored bytes: the tensor itself (raw) or the segments in order (compressed).
    enum Payload {
        case raw(StoredTensor)
        case segments([[UInt8]])
    }
    var payload: Payload
    public var storedSize: Int { entry.storedSize }

    /// Encodes a tensor (already in its final type) for `ContainerWriter.add`: checksum, and
    /// zstd chunks / byte planes when `options.zstd`. A raw payload keeps `tensor` alive.
    public init(_ tensor: StoredTensor, options: CompressionOptions) {
        self = TensorCodec.encode(tensor, options: options)
    }

    init(entry: ContainerTensorEntry, payload: Payload) {
        self.entry = entry
        self.payload = payload
    }
}

public enum TensorCodec {
    /// Encodes `tensor` (already in its final type) for storage.
    public static func encode(_ tensor: StoredTensor, options: CompressionOptions) -> EncodedTensor {
        let raw = tensor.bytes
        let checksum = hex64(XXH64.hash(raw))
        var entry = ContainerTensorEntry(name: tensor.name, shape: tensor.shape, type: tensor.type, offset: 0,
                                         storedSize: raw.count, rawSize: raw.count, compression: .none,
                                         chunks: nil, checksum: checksum)
        guard options.zstd, raw.count > 0, let base = raw.baseAddress else {
            return EncodedTensor(entry: entry, payload: .raw(tensor))
        }
        let elementSize = tensor.type.bytesPerElement
        let usePlanes = options.bytePlanes && elementSize > 1
        var chunks: [ContainerChunk] = []
        var segments: [[UInt8]] = []
        var scratch: AlignedBuffer?
        if usePlanes { scratch = AlignedBuffer(byteCount: min(raw.count, ContainerFormat.chunkSize)) }
        var start = 0
        while start < raw.count {
            let count = min(ContainerFormat.chunkSize, raw.count - start)
            var chunk = ContainerChunk(rawSize: count, segments: [])
            func store(_ pointer: UnsafeRawPointer, _ size: Int) {
                if let compressed = Zstd.compress(pointer, count: size, level: options.level),
                   Double(compressed.count) <= ContainerFormat.worthwhileRatio * Double(size) {
                    chunk.segments.append(ContainerSegment(encoding: .zstd, size: compressed.count))
                    segments.append(compressed)
                } else {
                    chunk.segments.append(ContainerSegment(encoding: .raw, size: size))
                    segments.append(Array(UnsafeRawBufferPointer(start: pointer, count: size)))
                }
            }
            if usePlanes, let scratch {
                BytePlanes.split(base + start, count: count, elementSize: elementSize, into: scratch.pointer)
                let planeSize = count / elementSize
                for k in 0..<elementSize { store(scratch.pointer + k * planeSize, planeSize) }
            } else {
                store(base + start, count)
            }
            chunks.append(chunk)
            start += count
        }
        entry.compression = usePlanes ? .zstdPlanes : .zstd
        entry.chunks = chunks
        entry.storedSize = segments.reduce(0) { $0 + $1.count }
        return EncodedTensor(entry: entry, payload: .segments(segments))
    }

    /// Checks the internal consistency of a table entry (sizes add up, planes match the type).
    public static func validate(_ entry: ContainerTensorEntry, path: String, fileSize: Int) throws {
        func bad(_ detail: String) -> ContainerError { .corruptTensor(path: path, tensor: entry.name, detail: detail) }
        guard entry.shape.allSatisfy({ $0 >= 0 }) else { throw bad("negative dimension in shape \(entry.shape)") }
        // Checked product first: byteCount itself would trap on a hostile shape. Eight bytes per
        // element bound every type's size (q8: 34 bytes per 32 values, plus 64 of padding).
        var elements = 1
        for dimension in entry.shape {
            let (product, overflow) = elements.multipliedReportingOverflow(by: dimension)
            guard !overflow, product <= Int.max / 8 - 64 else { throw bad("shape \(entry.shape) is too large") }
            elements = product
        }
        guard entry.rawSize == StoredTensor.byteCount(shape: entry.shape, type: entry.type) else {
            throw bad("raw size \(entry.rawSize) does not match shape \(entry.shape) as \(entry.type.rawValue)")
        }
        guard entry.offset >= ContainerFormat.headerSize, entry.storedSize >= 0,
              entry.offset <= fileSize, entry.storedSize <= fileSize - entry.offset else {
            throw ContainerError.truncated(path: path, detail: "tensor \(entry.name) lies outside the file (offset \(entry.offset), \(entry.storedSize) bytes, file \(fileSize) bytes)")
        }
        switch entry.compression {
        case .none:
            guard entry.storedSize == entry.rawSize, entry.chunks == nil else { throw bad("raw tensor with stored size ≠ raw size") }
            guard entry.offset % ContainerFormat.alignment == 0 else { throw bad("raw tensor offset \(entry.offset) is not 64-byte aligned") }
        case .zstd, .zstdPlanes:
            guard let chunks = entry.chunks else { throw bad("compressed tensor without chunks") }
            let planes = entry.compression == .zstdPlanes ? entry.type.bytesPerElement : 1
            guard planes >= 1 else { throw bad("byte planes on quantized type \(entry.type.rawValue)") }
            // Running totals, each step bounded, so a hostile table cannot overflow them.
            var rawTotal = 0, storedTotal = 0
            for chunk in chunks {
                guard chunk.rawSize > 0, chunk.rawSize <= ContainerFormat.chunkSize else {
                    throw bad("chunk of \(chunk.rawSize) bytes (1...\(ContainerFormat.chunkSize) allowed)")
                }
                guard chunk.segments.count == planes, chunk.rawSize % planes == 0 else {
                    throw bad("chunk of \(chunk.rawSize) bytes with \(chunk.segments.count) segments")
                }
                rawTotal += chunk.rawSize
                guard rawTotal <= entry.rawSize else { throw bad("chunk sizes do not add up to the raw size") }
                for segment in chunk.segments {
                    guard segment.size >= 0, segment.size <= entry.storedSize - storedTotal else {
                        throw bad("segment sizes do not add up to the stored size")
                    }
                    guard segment.encoding == .zstd || segment.size == chunk.rawSize / planes else { throw bad("raw segment of wrong size") }
                    storedTotal += segment.size
                }
            }
            guard rawTotal == entry.rawSize else { throw bad("chunk sizes do not add up to the raw size") }
            guard storedTotal == entry.storedSize else { throw bad("segment sizes do not add up to the stored size") }
        }
    }

    /// Decodes a compressed entry into `destination` (`entry.rawSize` bytes). `threads` > 1
    /// decodes the chunks in parallel.
    public static func decode(_ entry: ContainerTensorEntry, file: MappedFile, into destination: UnsafeMutableRawPointer,
                       threads: Int = 1) throws {
        guard let chunks = entry.chunks else {
            let bytes = try file.bytes(at: entry.offset, count: entry.rawSize)
            destination.copyMemory(from: bytes.baseAddress!, byteCount: entry.rawSize)
            return
        }
        let planes = entry.compression == .zstdPlanes ? entry.type.bytesPerElement : 1
        var storedOffsets: [Int] = [], rawOffsets: [Int] = []
        var stored = entry.offset, rawOffset = 0
        for chunk in chunks {
            storedOffsets.append(stored)
            rawOffsets.append(rawOffset)
            stored += chunk.segments.reduce(0) { $0 + $1.size }
            rawOffset += chunk.rawSize
        }
        let failure = FirstError()
        let work = { (index: Int) in
            do {
                try decodeChunk(chunks[index], planes: planes, storedOffset: storedOffsets[index], file: file,
                                into: destination + rawOffsets[index], tensor: entry.name)
            } catch {
                failure.record(error)
            }
        }
        if threads > 1, chunks.count > 1 {
            DispatchQueue.concurrentPerform(iterations: chunks.count, execute: work)
        } else {
            for index in chunks.indices { work(index) }
        }
        if let error = failure.error { throw error }
    }

    static func decodeChunk(_ chunk: ContainerChunk, planes: Int, storedOffset: Int, file: MappedFile,
                            into destination: UnsafeMutableRawPointer, tensor: String) throws {
        let planeSize = chunk.rawSize / planes
        let scratch = planes > 1 ? AlignedBuffer(byteCount: chunk.rawSize) : nil
        let target = scratch?.pointer ?? destination
        var offset = storedOffset
        for (k, segment) in chunk.segments.enumerated() {
            let stored = try file.bytes(at: offset, count: segment.size)
            let out = target + k * planeSize
            switch segment.encoding {
            case .raw:
                out.copyMemory(from: stored.baseAddress!, byteCount: planeSize)
            case .zstd:
                if let problem = Zstd.decompress(stored.baseAddress!, count: segment.size, into: out, capacity: planeSize) {
                    throw ContainerError.corruptTensor(path: file.path, tensor: tensor, detail: "zstd frame at offset \(offset): \(problem)")
                }
            }
            offset += segment.size
        }
        if let scratch {
            BytePlanes.merge(scratch.pointer, count: chunk.rawSize, elementSize: planes, into: destination)
        }
    }
}
