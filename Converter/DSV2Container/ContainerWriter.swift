import Foundation
import DSV2Core
#if canImport(Glibc)
import Glibc
import DSV2Formats
#endif

/// Writes a `.dsv2` container: append the embedded files and the encoded tensors in order,
/// then `finish`. Everything goes to a temporary file next to the destination, which is
/// fsynced and renamed over the destination only by `finish`; `abort` (or deinit without
/// `finish`) removes it. Not thread-safe: one writer thread appends.
public final class ContainerWriter {
    public let destination: URL
    public let temporaryPath: String
    private var fd: Int32
    private var position = 0
    private var files: [ContainerFileEntry] = []
    private var tensors: [ContainerTensorEntry] = []
    private var finished = false
    /// Test hook: milliseconds to sleep before each tensor (DSV2_TEST_SLOW_WRITE_MS), so tests
    /// can interrupt a conversion half-way.
    private let slowWriteMilliseconds: UInt32

    /// Opens the temporary file. Throws `ContainerError.exists` when `destination` exists and
    /// `overwrite` is false, `.cannotWrite` when its folder is not writable.
    public init(destination: URL, overwrite: Bool) throws {
        self.destination = destination
        let path = destination.path
        if !overwrite, FileManager.default.fileExists(atPath: path) { throw ContainerError.exists(path: path) }
        let folder = destination.deletingLastPathComponent().path
        temporaryPath = TemporaryOutput.begin(destination).path
        fd = open(temporaryPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            TemporaryOutput.end(URL(fileURLWithPath: temporaryPath))
            throw ContainerError.cannotWrite(path: path, reason: "cannot create a file in \(folder): \(String(cString: strerror(errno)))")
        }
        slowWriteMilliseconds = UInt32(ProcessInfo.processInfo.environment["DSV2_TEST_SLOW_WRITE_MS"] ?? "") ?? 0
        // A zero header: no magic until the file is complete.
        try write([UInt8](repeating: 0, count: ContainerFormat.headerSize))
    }

    deinit { if !finished { abort() } }

    /// Removes the temporary file (`TemporaryOutput.path(for: destination)`); the destination is untouched.
    public func abort() {
        if fd >= 0 { close(fd); fd = -1 }
        TemporaryOutput.discard(URL(fileURLWithPath: temporaryPath))
        finished = true
    }

    private func write(_ pointer: UnsafeRawPointer, count: Int) throws {
        var done = 0
        while done < count {
            let n = Glibc.write(fd, pointer + done, min(count - done, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw ContainerError.cannotWrite(path: destination.path, reason: String(cString: strerror(errno)))
            }
            done += n
        }
        position += count
    }

    private func write(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try write($0.baseAddress!, count: $0.count) }
    }

    private func pad(to alignment: Int) throws {
        let padding = (alignment - position % alignment) % alignment
        if padding > 0 { try write([UInt8](repeating: 0, count: padding)) }
    }

    /// Embeds a file (config.json, tokenizer files) verbatim.
    public func addFile(name: String, data: Data) throws {
        try pad(to: ContainerFormat.alignment)
        let entry = ContainerFileEntry(name: name, offset: position, size: data.count,
                                       checksum: hex64(data.withUnsafeBytes { XXH64.hash($0) }))
        if !data.isEmpty { try data.withUnsafeBytes { try write($0.baseAddress!, count: $0.count) } }
        files.append(entry)
    }

    /// Appends an encoded tensor; returns its table entry (with its offset).
    @discardableResult
    public func add(_ tensor: EncodedTensor) throws -> ContainerTensorEntry {
        if slowWriteMilliseconds > 0 { usleep(slowWriteMilliseconds * 1000) }
        var entry = tensor.entry
        try pad(to: ContainerFormat.alignment(storedSize: entry.storedSize, isRaw: entry.compression == .none))
        entry.offset = position
        switch tensor.payload {
        case let .raw(stored):
            if stored.bytes.count > 0 { try write(stored.bytes.baseAddress!, count: stored.bytes.count) }
            withExtendedLifetime(stored.owner) {}
        case let .segments(segments):
            for segment in segments { try write(segment) }
        }
        tensors.append(entry)
        return entry
    }

    /// Writes the metadata and header, fsyncs and renames the file to `destination`.
    public func finish(quantization: String, provenance: ContainerProvenance) throws -> ContainerMetadata {
        try pad(to: ContainerFormat.alignment)
        let metadata = ContainerMetadata(formatVersion: Int(ContainerFormat.version),
                                         converterVersion: ContainerFormat.converterVersion,
                                         zstdVersion: Zstd.versionString, quantization: quantization,
                                         files: files, provenance: provenance, tensors: tensors)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = [UInt8](try encoder.encode(metadata))
        let metadataOffset = position
        try write(json)
        let header = ContainerHeader(formatVersion: ContainerFormat.version, metadataOffset: UInt64(metadataOffset),
                                     metadataSize: UInt64(json.count),
                                     metadataChecksum: json.withUnsafeBytes { XXH64.hash($0) },
                                     fileSize: UInt64(position))
        let headerBytes = header.encoded()
        let written = headerBytes.withUnsafeBytes { pwrite(fd, $0.baseAddress!, $0.count, 0) }
        guard written == headerBytes.count else {
            throw ContainerError.cannotWrite(path: destination.path, reason: "header: \(String(cString: strerror(errno)))")
        }
        guard fsync(fd) == 0 else {
            throw ContainerError.cannotWrite(path: destination.path, reason: "fsync: \(String(cString: strerror(errno)))")
        }
        close(fd)
        fd = -1
        guard rename(temporaryPath, destination.path) == 0 else {
            let reason = String(cString: strerror(errno))
            abort()
            throw ContainerError.cannotWrite(path: destination.path, reason: "rename: \(reason)")
        }
        finished = true
        TemporaryOutput.end(URL(fileURLWithPath: temporaryPath))
        // Make the rename itself durable.
        let folder = open(destination.deletingLastPathComponent().path, O_RDONLY | O_DIRECTORY)
        if folder >= 0 { fsync(folder); close(folder) }
        return metadata
    }
}
