import Foundation
import DSV2Core
import DSV2Formats

/// The `.dsv2` container layout (docs/FORMAT.md, "Container"):
///
///     [0, 64)         fixed header (little-endian)
///     [64, ...)       embedded files (config.json, tokenizer files), then tensor data;
///                     every item starts at a multiple of 64, raw tensors of ≥ 1 MiB at a
///                     multiple of 4096 (the page), so they can be used in place from an mmap
///     [m, m + n)      metadata: UTF-8 JSON (`ContainerMetadata`), located by the header
///
/// The metadata is written last (the tensor table is known only then) and the magic is written
/// after everything else, just before fsync and rename, so a partial file never looks valid.
public enum ContainerFormat {
    public static let magic: [UInt8] = Array("DSV2CTNR".utf8)
    /// Bump on any incompatible change; readers reject versions they do not know.
    public static let version: UInt32 = 1
    public static let headerSize = 64
    /// Alignment of every item in the file.
    public static let alignment = 64
    /// Raw tensors at least this large start on a page boundary.
    public static let pageAlignmentThreshold = 1 << 20
    public static let pageSize = 4096
    /// Compressed tensors are cut into independent frames of at most this many raw bytes, so
    /// large tensors decompress in parallel.
    public static let chunkSize = 8 << 20
    /// A plane or chunk is stored compressed only when zstd makes it at most this fraction of its size.
    public static let worthwhileRatio = 0.97

    /// The converter version written into every container.
    public static let converterVersion = "dsv2-converter 1.0"

    /// Alignment for a tensor item of `storedSize` bytes stored raw (`isRaw`) or compressed.
    static func alignment(storedSize: Int, isRaw: Bool) -> Int {
        isRaw && storedSize >= pageAlignmentThreshold ? pageSize : alignment
    }
}

/// The fixed 64-byte header.
///
///     0   magic "DSV2CTNR"             8 bytes
///     8   format version               u32
///     12  header size (64)             u32
///     16  metadata offset              u64
///     24  metadata size                u64
///     32  metadata XXH64               u64
///     40  file size                    u64 (a shorter file is truncated)
///     48  reserved, zero               8 bytes
///     56  XXH64 of bytes 0 ..< 56      u64
public struct ContainerHeader: Equatable, Sendable {
    public var formatVersion: UInt32
    public var metadataOffset: UInt64
    public var metadataSize: UInt64
    public var metadataChecksum: UInt64
    public var fileSize: UInt64

    func encoded() -> [UInt8] {
        var bytes = [UInt8](repeating: 0, count: ContainerFormat.headerSize)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { raw in
                for (i, b) in raw.enumerated() { bytes[offset + i] = b }
            }
        }
        bytes.replaceSubrange(0..<8, with: ContainerFormat.magic)
        put(formatVersion, at: 8)
        put(UInt32(ContainerFormat.headerSize), at: 12)
        put(metadataOffset, at: 16)
        put(metadataSize, at: 24)
        put(metadataChecksum, at: 32)
        put(fileSize, at: 40)
        put(XXH64.hash(bytes: bytes[0..<56]), at: 56)
        return bytes
    }

    static func decode(_ raw: UnsafeRawBufferPointer, path: String) throws -> ContainerHeader {
        guard raw.count >= ContainerFormat.headerSize else {
            throw ContainerError.truncated(path: path, detail: "\(raw.count) bytes, shorter than the 64-byte header")
        }
        guard Array(raw[0..<8]) == ContainerFormat.magic else {
            throw ContainerError.notAContainer(path: path)
        }
        func get<T: FixedWidthInteger>(_ offset: Int, _ type: T.Type) -> T {
            T(littleEndian: raw.loadUnaligned(fromByteOffset: offset, as: T.self))
        }
        let version = get(8, UInt32.self)
        guard version == ContainerFormat.version else {
            throw ContainerError.unsupportedVersion(path: path, found: version, supported: ContainerFormat.version)
        }
        guard XXH64.hash(UnsafeRawBufferPointer(rebasing: raw[0..<56])) == get(56, UInt64.self) else {
            throw ContainerError.corruptHeader(path: path, detail: "header checksum mismatch")
        }
        // Version 1 has exactly this header: another size or a non-zero reserved field is a
        // format this build does not know, not something to skip over.
        let headerSize = get(12, UInt32.self)
        guard headerSize == UInt32(ContainerFormat.headerSize) else {
            throw ContainerError.corruptHeader(path: path, detail: "header size \(headerSize), version \(version) has \(ContainerFormat.headerSize)")
        }
        guard get(48, UInt64.self) == 0 else {
            throw ContainerError.corruptHeader(path: path, detail: "reserved header bytes 48..<56 are not zero")
        }
        return ContainerHeader(formatVersion: version, metadataOffset: get(16, UInt64.self),
                               metadataSize: get(24, UInt64.self), metadataChecksum: get(32, UInt64.self),
                               fileSize: get(40, UInt64.self))
    }
}

/// How a tensor's bytes are stored.
public enum TensorCompression: String, Codable, Sendable {
    /// The tensor's bytes verbatim, aligned: usable in place from an mmap.
    case none
    /// Chunks of independent zstd frames.
    case zstd
    /// Chunks whose bytes are grouped into planes (byte k of each element together), each plane
    /// a zstd frame or raw when zstd does not help (float types only).
    case zstdPlanes = "zstd-planes"
}

/// One stored piece of a chunk: a zstd frame or raw bytes.
public struct ContainerSegment: Codable, Equatable, Sendable {
    public enum Encoding: String, Codable, Sendable { case raw, zstd }
    public var encoding: Encoding
    /// Bytes in the file.
    public var size: Int
}

/// A run of the tensor's raw bytes stored as one or more segments (one per plane with
/// `zstd-planes`, one otherwise). Segments follow each other in the file.
public struct ContainerChunk: Codable, Equatable, Sendable {
    /// Raw (decoded) bytes of this chunk.
    public var rawSize: Int
    public var segments: [ContainerSegment]
}

/// One row of the tensor table.
public struct ContainerTensorEntry: Codable, Equatable, Sendable {
    /// Hugging Face name, verbatim.
    public var name: String
    public var shape: [Int]
    public var type: WeightType
    /// Absolute file offset of the first stored byte.
    public var offset: Int
    /// Bytes in the file.
    public var storedSize: Int
    /// Bytes of the tensor once decoded (`type.byteCount`).
    public var rawSize: Int
    public var compression: TensorCompression
    /// Present for compressed tensors; chunks follow each other from `offset`.
    public var chunks: [ContainerChunk]?
    /// XXH64 of the raw (decoded) bytes, 16 hex digits.
    public var checksum: String
}

/// A file stored verbatim (config.json, tokenizer.json, ...).
public struct ContainerFileEntry: Codable, Equatable, Sendable {
    public var name: String
    public var offset: Int
    public var size: Int
    public var checksum: String
}

/// Where the weights came from.
public struct ContainerProvenance: Codable, Equatable, Sendable {
    public struct SourceFile: Codable, Equatable, Sendable {
        public var name: String
        public var size: Int
        /// XXH64 of the whole file, 16 hex digits.
        public var checksum: String
        public init(name: String, size: Int, checksum: String) {
            self.name = name; self.size = size; self.checksum = checksum
        }
    }
    /// "safetensors" or "dsv2-container".
    public var sourceFormat: String
    /// The source folder or file name (last path component only: no user paths leak).
    public var sourceName: String
    public var files: [SourceFile]
    /// The provenance of the container this one was converted from, if any.
    public var derivedFrom: [SourceFile]?

    public init(sourceFormat: String, sourceName: String, files: [SourceFile], derivedFrom: [SourceFile]? = nil) {
        self.sourceFormat = sourceFormat
        self.sourceName = sourceName
        self.files = files
        self.derivedFrom = derivedFrom
    }
}

/// The JSON metadata block.
public struct ContainerMetadata: Codable, Equatable, Sendable {
    public var formatVersion: Int
    public var converterVersion: String
    public var zstdVersion: String
    /// The quantization preset the tensors were stored with.
    public var quantization: String
    public var files: [ContainerFileEntry]
    public var provenance: ContainerProvenance
    public var tensors: [ContainerTensorEntry]
}

public func hex64(_ value: UInt64) -> String {
    let digits = String(value, radix: 16)
    return String(repeating: "0", count: 16 - digits.count) + digits
}
