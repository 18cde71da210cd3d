import Foundation
import DSV2Core
import DSV2Formats

/// Reads a `.dsv2` container. Raw tensors are returned zero-copy from the mapped file (owner:
/// the `MappedFile`); compressed tensors are decoded straight into an aligned `AlignedBuffer`.
/// Every tensor handed out has had its XXH64 and finiteness checked (for raw tensors unless
/// `verifyRawTensors` is off). Thread-safe.
public final class ContainerReader: WeightSource, @unchecked Sendable {
    public let path: String
    public let file: MappedFile
    public let header: ContainerHeader
    public let metadata: ContainerMetadata
    /// Check the XXH64 and finiteness of a raw tensor on every `tensor(_:)`, in one pass over its
    /// bytes (on by default: corrupt weights are never used silently). Turning it off makes an
    /// mmap-ed model load without reading its pages; compressed tensors are always checked as
    /// they are decoded, and `verify` always checks.
    public var verifyRawTensors: Bool
    private let entriesByName: [String: Int]
    private let filesByName: [String: ContainerFileEntry]
    public let configJSON: Data
    public let tokenizerFiles: [String: Data]

    /// Opens and validates the header, the metadata and the table's internal consistency
    /// (sizes, bounds, no two items sharing bytes). Tensor data is not read.
    public init(path: String, verifyRawTensors: Bool = true) throws {
        self.path = path
        self.verifyRawTensors = verifyRawTensors
        file = try MappedFile(path: path)
        let headerBytes = try file.bytes(at: 0, count: min(file.size, ContainerFormat.headerSize))
        header = try ContainerHeader.decode(headerBytes, path: path)
        guard UInt64(file.size) == header.fileSize else {
            if UInt64(file.size) < header.fileSize {
                throw ContainerError.truncated(path: path, detail: "the header says \(header.fileSize) bytes, the file has \(file.size)")
            }
            throw ContainerError.corruptHeader(path: path, detail: "the header says \(header.fileSize) bytes, the file has \(file.size)")
        }
        guard header.metadataOffset >= UInt64(ContainerFormat.headerSize),
              header.metadataOffset <= header.fileSize,
              header.metadataSize <= header.fileSize - header.metadataOffset else {
            throw ContainerError.corruptHeader(path: path, detail: "metadata range outside the file")
        }
        let json = try file.bytes(at: Int(header.metadataOffset), count: Int(header.metadataSize))
        guard XXH64.hash(json) == header.metadataChecksum else {
            throw ContainerError.corruptMetadata(path: path, detail: "metadata checksum mismatch")
        }
        do {
            metadata = try JSONDecoder().decode(ContainerMetadata.self, from: Data(json))
        } catch {
            throw ContainerError.corruptMetadata(path: path, detail: "\(error)")
        }
        guard metadata.formatVersion == Int(ContainerFormat.version) else {
            throw ContainerError.corruptMetadata(path: path, detail: "formatVersion \(metadata.formatVersion) does not match the header's version \(ContainerFormat.version)")
        }
        var byName: [String: Int] = [:]
        for (index, entry) in metadata.tensors.enumerated() {
            guard byName[entry.name] == nil else {
                throw ContainerError.corruptMetadata(path: path, detail: "tensor \(entry.name) listed twice")
            }
            try TensorCodec.validate(entry, path: path, fileSize: file.size)
            byName[entry.name] = index
        }
        entriesByName = byName
        var files: [String: ContainerFileEntry] = [:]
        for entry in metadata.files {
            guard entry.offset >= 0, entry.size >= 0, entry.offset <= file.size, entry.size <= file.size - entry.offset else {
                throw ContainerError.truncated(path: path, detail: "embedded file \(entry.name) lies outside the file")
            }
            files[entry.name] = entry
        }
        filesByName = files
        try Self.checkNoOverlap(metadata, header: header, path: path)
        // The embedded files are small: read and check them now, so a bad one is an error at open.
        var embedded: [String: Data] = [:]
        for entry in metadata.files {
            let bytes = try file.bytes(at: entry.offset, count: entry.size)
            let found = hex64(XXH64.hash(bytes))
            guard found == entry.checksum else {
                throw ContainerError.corruptMetadata(path: path, detail: "embedded file \(entry.name): checksum mismatch (expected \(entry.checksum), found \(found))")
            }
            embedded[entry.name] = Data(bytes)
        }
        guard let config = embedded.removeValue(forKey: "config.json") else {
            throw ContainerError.corruptMetadata(path: path, detail: "no embedded config.json")
        }
        configJSON = config
        tokenizerFiles = embedded
    }

    /// Every stored item (embedded file, tensor) must lie after the header and share no byte
    /// with another item or the metadata: otherwise one tensor's bytes could pass for another's
    /// with both checksums valid.
    static func checkNoOverlap(_ metadata: ContainerMetadata, header: ContainerHeader, path: String) throws {
        var regions: [(start: Int, end: Int, name: String)] = [(0, ContainerFormat.headerSize, "the header")]
        regions.append((Int(header.metadataOffset), Int(header.metadataOffset + header.metadataSize), "the metadata"))
        for entry in metadata.files where entry.size > 0 {
            regions.append((entry.offset, entry.offset + entry.size, "embedded file \(entry.name)"))
        }
        for entry in metadata.tensors where entry.storedSize > 0 {
            regions.append((entry.offset, entry.offset + entry.storedSize, "tensor \(entry.name)"))
        }
        regions.sort { ($0.start, $0.end) < ($1.start, $1.end) }
        for (previous, next) in zip(regions, regions.dropFirst()) where next.start < previous.end {
            throw ContainerError.corruptMetadata(path: path, detail: "\(next.name) (bytes \(next.start)..<\(next.end)) overlaps \(previous.name) (bytes \(previous.start)..<\(previous.end))")
        }
    }

    /// The tensor table must match the embedded config.json, as a Hugging Face checkpoint's must
    /// (`ModelConfig.tensorTableMismatch`): every expected tensor with its shape, and no other.
    public func checkAgainstConfig() throws {
        let config = try ModelConfig.decode(configJSON, file: path + " (config.json)")
        switch config.tensorTableMismatch(names: tensorNames, shape: { self.entry($0)?.shape }) {
        case nil: return
        case let .missing(tensor, _): throw ContainerError.missingTensor(path: path, tensor: tensor)
        case let .wrongShape(tensor, expected, found):
            throw ContainerError.corruptTensor(path: path, tensor: tensor, detail: "shape \(found) does not match config.json (expected \(expected))")
        case let .unexpected(tensor, reason):
            throw ContainerError.corruptTensor(path: path, tensor: tensor, detail: "not expected by config.json: \(reason)")
        }
    }

    /// The table entry of `name`.
    public func entry(_ name: String) -> ContainerTensorEntry? {
        entriesByName[name].map { metadata.tensors[$0] }
    }

    /// An embedded file's bytes (checksum verified), or nil when the container has no such file.
    public func embeddedFile(_ name: String) throws -> Data? {
        guard let entry = filesByName[name] else { return nil }
        let bytes = try file.bytes(at: entry.offset, count: entry.size)
        let found = hex64(XXH64.hash(bytes))
        guard found == entry.checksum else {
            throw ContainerError.corruptMetadata(path: path, detail: "embedded file \(name): checksum mismatch (expected \(entry.checksum), found \(found))")
        }
        return Data(bytes)
    }

    // MARK: WeightSource

    public var tensorNames: [String] { metadata.tensors.map(\.name) }

    public var location: String { path }

    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        entry(name).map { ($0.type, $0.shape) }
    }

    public func tensor(_ name: String) throws -> StoredTensor {
        try tensor(name, threads: 1)
    }

    /// `threads` > 1 decodes the chunks of a large compressed tensor in parallel. `checkRaw`:
    /// whether a raw tensor is checked here (`verifyRawTensors`), or by a
    /// `BackgroundTensorCheck` the caller waits for.
    public func tensor(_ name: String, threads: Int, checkRaw: Bool? = nil) throws -> StoredTensor {
        guard let entry = entry(name) else { throw ContainerError.missingTensor(path: path, tensor: name) }
        if entry.compression == .none {
            let tensor = StoredTensor(name: name, type: entry.type, shape: entry.shape,
                                      bytes: try file.bytes(at: entry.offset, count: entry.rawSize), owner: file)
            if checkRaw ?? verifyRawTensors { try checkRawTensor(entry, tensor) }
            return tensor
        }
        let buffer = AlignedBuffer(byteCount: entry.rawSize)
        try TensorCodec.decode(entry, file: file, into: buffer.pointer, threads: threads)
        let tensor = StoredTensor(name: name, type: entry.type, shape: entry.shape, bytes: buffer.bytes, owner: buffer)
        try check(entry, tensor)
        return tensor
    }

    /// Every tensor, decoded in parallel across tensors on `threads` threads. Throws the first
    /// error (naming the tensor).
    public func loadAll(threads: Int = ProcessInfo.processInfo.activeProcessorCount) throws -> [String: StoredTensor] {
        let names = tensorNames
        var results = [StoredTensor?](repeating: nil, count: names.count)
        let failure = FirstError()
        let next = AtomicCounter()
        results.withUnsafeMutableBufferPointer { slots in
            let slots = UnsafeSendable(slots)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, names.count))) { _ in
                while failure.error == nil {
                    let index = next.increment()
                    if index >= names.count { break }
                    do { slots.value[index] = try self.tensor(names[index]) } catch { failure.record(error) }
                }
            }
        }
        if let error = failure.error { throw error }
        var dictionary: [String: StoredTensor] = [:]
        for (name, tensor) in zip(names, results) { dictionary[name] = tensor! }
        return dictionary
    }

    /// Drops the mapped pages of a tensor's stored bytes (after decoding a compressed tensor,
    /// or once done with a raw one): they no longer count in the resident set and are re-read
    /// from the file if touched again. Never invalidates a returned `StoredTensor`.
    public func releasePages(of name: String) {
        guard let entry = entry(name), let bytes = try? file.bytes(at: entry.offset, count: entry.storedSize) else { return }
        PageRelease.release(bytes)
    }

    /// Reads a raw tensor's pages ahead (a cold cache streams at disk speed), then checks it.
    func checkRawTensor(_ entry: ContainerTensorEntry, _ tensor: StoredTensor) throws {
        file.willNeed(tensor.bytes)
        try check(entry, tensor)
    }

    /// The XXH64 and the finiteness of a tensor's decoded bytes, in one pass of 256 KiB pieces
    /// (each is hashed, then scanned for NaN/infinity while still in cache). A checksum mismatch
    /// wins over a NaN: it says the bytes are not the ones written.
    private func check(_ entry: ContainerTensorEntry, _ tensor: StoredTensor) throws {
        let bytes = tensor.bytes
        var hasher = XXH64()
        var nonFinite: (row: Int, column: Int)?
        let piece = 1 << 18
        var start = 0
        while start < bytes.count {
            let end = min(start + piece, bytes.count)
            hasher.update(bytes.baseAddress! + start, count: end - start)
            if nonFinite == nil { nonFinite = tensor.firstNonFinite(inByteRange: start..<end) }
            start = end
        }
        let found = hex64(hasher.finalize())
        guard found == entry.checksum else {
            throw ContainerError.checksumMismatch(path: path, tensor: entry.name, expected: entry.checksum, found: found)
        }
        if let (row, column) = nonFinite {
            throw ContainerError.nonFinite(path: path, tensor: entry.name, row: row, column: column)
        }
    }

    /// Checks the structure, every checksum and that every weight is finite; returns one problem
    /// per bad tensor or file (empty when all is well).
    public func verify(threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                       progress: ((_ tensorsDone: Int, _ tensorCount: Int, _ bytesDone: Int, _ bytesTotal: Int) -> Void)? = nil) -> [ContainerError] {
        var problems: [ContainerError] = []
        for entry in metadata.files {
            do { _ = try embeddedFile(entry.name) } catch let error as ContainerError { problems.append(error) } catch {}
        }
        let tensors = metadata.tensors
        var results = [ContainerError?](repeating: nil, count: tensors.count)
        let next = AtomicCounter()
        let done = AtomicCounter()
        let bytesTotal = tensors.reduce(0) { $0 + $1.rawSize }
        let bytesDone = AtomicCounter()
        results.withUnsafeMutableBufferPointer { slots in
            let slots = UnsafeSendable(slots)
            DispatchQueue.concurrentPerform(iterations: max(1, min(threads, tensors.count))) { _ in
                while true {
                    let index = next.increment()
                    if index >= tensors.count { break }
                    let entry = tensors[index]
                    do {
                        let tensor = try self.tensor(entry.name)
                        if entry.compression == .none, !self.verifyRawTensors { try self.check(entry, tensor) }
                    } catch let error as ContainerError {
                        slots.value[index] = error
                    } catch {
                        slots.value[index] = .corruptTensor(path: self.path, tensor: entry.name, detail: "\(error)")
                    }
                    self.releasePages(of: entry.name)
                    let finished = done.increment() + 1
                    let bytes = bytesDone.add(entry.rawSize) + entry.rawSize
                    progress?(finished, tensors.count, bytes, bytesTotal)
                }
            }
        }
        problems += results.compactMap { $0 }
        return problems
    }
}
