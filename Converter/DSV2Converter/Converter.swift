import Foundation
#if canImport(Glibc)
import Glibc
import DSV2Core
import DSV2Formats
import DSV2Container
#endif

/// Options of one conversion.
public struct ConversionOptions: Sendable {
    public var policy: QuantizationPolicy
    public var compression: CompressionOptions
    /// Tensors converted at once (each by one thread); also bounds memory: at most this many
    /// tensors are in flight.
    public var threads: Int
    /// Replace an existing destination.
    public var overwrite: Bool

    public init(policy: QuantizationPolicy, compression: CompressionOptions = .none,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, overwrite: Bool = false) {
        self.policy = policy
        self.compression = compression
        self.threads = threads
        self.overwrite = overwrite
    }
}

/// Reported after each tensor is written (from the writing thread).
public struct ConversionProgress: Sendable {
    public var tensorsDone: Int
    public var tensorCount: Int
    public var tensorName: String
    /// Source bytes of the tensors done / of all tensors.
    public var inputBytesDone: Int
    public var inputBytesTotal: Int
    public var outputBytes: Int
    public var elapsedSeconds: Double
}

public struct ConversionSummary: Sendable {
    public var metadata: ContainerMetadata
    public var inputBytes: Int
    public var outputBytes: Int
    public var seconds: Double
}

/// HF checkpoint or container → container.
public enum Converter {
    /// Opens a conversion source: a `.dsv2` container file, or a HF folder / `.safetensors`
    /// file's folder (validated against its config.json). Also returns its provenance (the
    /// source files' names, sizes and XXH64, read with a small buffer: no RSS growth).
    public static func openSource(_ url: URL) throws -> (source: WeightSource, provenance: ContainerProvenance) {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory)
        if exists, !isDirectory.boolValue, try isContainer(url) {
            let reader = try ContainerReader(path: url.path)
            try reader.checkAgainstConfig()
            let me = try sourceFile(url)
            let provenance = ContainerProvenance(sourceFormat: "dsv2-container", sourceName: url.lastPathComponent,
                                                 files: [me], derivedFrom: reader.metadata.provenance.files)
            return (reader, provenance)
        }
        let folder = exists && !isDirectory.boolValue ? url.deletingLastPathComponent() : url
        let source = try HFCheckpointSource(folder: folder)
        var files = [try sourceFile(folder.appendingPathComponent("config.json"))]
        let index = folder.appendingPathComponent(SafetensorsCheckpoint.indexFileName)
        if FileManager.default.fileExists(atPath: index.path) { files.append(try sourceFile(index)) }
        for shard in source.files { files.append(try sourceFile(shard)) }
        for name in HFCheckpointSource.tokenizerFileNames where source.tokenizerFiles[name] != nil {
            files.append(try sourceFile(folder.appendingPathComponent(name)))
        }
        return (source, ContainerProvenance(sourceFormat: "safetensors", sourceName: folder.lastPathComponent, files: files))
    }

    /// Whether `url` starts with the container magic.
    static func isContainer(_ url: URL) throws -> Bool {
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? handle.close() }
        let head = handle.readData(ofLength: 8)
        return Array(head) == ContainerFormat.magic || url.pathExtension == "dsv2"
    }

    /// Name, size and XXH64 of a file, streamed through a 4 MiB buffer.
    public static func sourceFile(_ url: URL) throws -> ContainerProvenance.SourceFile {
        let fd = open(url.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw MappedFileError.cannotOpen(path: url.path, reason: String(cString: strerror(errno))) }
        defer { close(fd) }
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: 4 << 20, alignment: 4096)
        defer { buffer.deallocate() }
        var hasher = XXH64()
        var size = 0
        while true {
            let n = read(fd, buffer, 4 << 20)
            if n < 0 {
                if errno == EINTR { continue }
                throw MappedFileError.cannotOpen(path: url.path, reason: String(cString: strerror(errno)))
            }
            if n == 0 { break }
            hasher.update(buffer, count: n)
            size += n
        }
        return .init(name: url.lastPathComponent, size: size, checksum: hex64(hasher.finalize()))
    }

    /// Converts every tensor of `source` with `options.policy` and writes the container to
    /// `destination` (temporary file + fsync + rename). Tensors are converted in parallel by
    /// `options.threads` workers and written in order; at most `threads` tensors are in memory.
    public static func convert(source: WeightSource, provenance: ContainerProvenance, to destination: URL,
                               options: ConversionOptions,
                               progress: ((ConversionProgress) -> Void)? = nil) throws -> ConversionSummary {
        let policy = options.policy
        return try run(source: source, provenance: provenance, to: destination, options: options,
                       quantization: policy.name, typeFor: { policy.type(for: $0, shape: $1) }, progress: progress)
    }

    /// Every tensor of `source` kept in the type the source hands it out as (`tensorInfo`), the
    /// container labelled `quantization`: a GGUF file's Q8_0/Q4_0/F16/… as they are.
    public static func convertAsStored(source: WeightSource, quantization: String, provenance: ContainerProvenance,
                                       to destination: URL, options: ConversionOptions,
                                       progress: ((ConversionProgress) -> Void)? = nil) throws -> ConversionSummary {
        try run(source: source, provenance: provenance, to: destination, options: options, quantization: quantization,
                typeFor: { name, _ in source.tensorInfo(name)?.type ?? .f32 }, progress: progress)
    }

    /// Compressed container → raw container with the same types, bytes and provenance.
    public static func unpack(_ reader: ContainerReader, to destination: URL,
                              threads: Int = ProcessInfo.processInfo.activeProcessorCount, overwrite: Bool = false,
                              progress: ((ConversionProgress) -> Void)? = nil) throws -> ConversionSummary {
        let options = ConversionOptions(policy: QuantizationPolicy(name: reader.metadata.quantization, defaultType: .f32),
                                        compression: .none, threads: threads, overwrite: overwrite)
        return try run(source: reader, provenance: reader.metadata.provenance, to: destination, options: options,
                       quantization: reader.metadata.quantization,
                       typeFor: { name, _ in reader.entry(name)!.type }, progress: progress)
    }

    static func run(source: WeightSource, provenance: ContainerProvenance, to destination: URL,
                    options: ConversionOptions, quantization: String, typeFor: @escaping (String, [Int]) -> WeightType,
                    progress: ((ConversionProgress) -> Void)?) throws -> ConversionSummary {
        let start = Date()
        let names = source.tensorNames
        var sizes: [Int] = []
        for name in names {
            guard let info = source.tensorInfo(name) else {
                throw WeightSourceError.missingTensor(source: provenance.sourceName, tensor: name)
            }
            sizes.append(StoredTensor.byteCount(shape: info.shape, type: info.type))
        }
        let inputTotal = sizes.reduce(0, +)
        let writer = try ContainerWriter(destination: destination, overwrite: options.overwrite)
        try writer.addFile(name: "config.json", data: source.configJSON)
        for (name, data) in source.tokenizerFiles.sorted(by: { $0.key < $1.key }) {
            try writer.addFile(name: name, data: data)
        }

        let condition = NSCondition()
        var nextToWrite = 0
        var failure: Error?
        var inputDone = 0
        var outputBytes = 0
        let next = AtomicCounter()
        let workers = max(1, min(options.threads, names.count))
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            while true {
                condition.lock()
                let failed = failure != nil
                condition.unlock()
                if failed { return }
                let index = next.increment()
                if index >= names.count { return }
                let name = names[index]
                var encoded: EncodedTensor?
                var sourceTensor: StoredTensor?
                do {
                    let tensor = try source.tensor(name)
                    sourceTensor = tensor
                    let converted = try TensorConversion.convert(tensor, to: typeFor(name, tensor.shape), file: source.file(of: name))
                    encoded = TensorCodec.encode(converted, options: options.compression)
                } catch {
                    condition.lock()
                    if failure == nil { failure = error }
                    condition.broadcast()
                    condition.unlock()
                    return
                }
                condition.lock()
                while nextToWrite != index && failure == nil { condition.wait() }
                if failure != nil { condition.unlock(); return }
                do {
                    let entry = try writer.add(encoded!)
                    encoded = nil
                    inputDone += sizes[index]
                    outputBytes += entry.storedSize
                    nextToWrite += 1
                    progress?(ConversionProgress(tensorsDone: nextToWrite, tensorCount: names.count, tensorName: name,
                                                 inputBytesDone: inputDone, inputBytesTotal: inputTotal,
                                                 outputBytes: outputBytes, elapsedSeconds: Date().timeIntervalSince(start)))
                } catch {
                    failure = error
                }
                condition.broadcast()
                condition.unlock()
                if let sourceTensor { PageRelease.releaseIfMapped(sourceTensor) }
                if let reader = source as? ContainerReader { reader.releasePages(of: name) }
            }
        }
        if let failure {
            writer.abort()
            throw failure
        }
        let metadata = try writer.finish(quantization: quantization, provenance: provenance)
        let attributes = try? FileManager.default.attributesOfItem(atPath: destination.path)
        let fileSize = attributes?[.size] as? Int ?? outputBytes
        return ConversionSummary(metadata: metadata, inputBytes: inputTotal, outputBytes: fileSize,
                                 seconds: Date().timeIntervalSince(start))
    }
}
