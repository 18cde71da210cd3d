import Foundation
#if canImport(Glibc)
import Glibc
import DSV2Core
import DSV2Formats
import DSV2Container
#endif

/// Writes a synthetic checkpoint as a Hugging Face folder: `config.json`, bf16 safetensors
/// shards named like DeepSeek's (`model-00001-of-000004.safetensors`) and
/// `model.safetensors.index.json`, or a single `model.safetensors` when everything fits in one
/// shard.
///
/// Streaming: every shard's header is known from the shapes alone, so it is written first and
/// the tensors follow one by one through one reusable buffer (the largest tensor). The folder is
/// assembled under a temporary name next to the destination and renamed at the end.
public enum SynthHFWriter {
    /// Hugging Face's default `max_shard_size` ("5GB").
    public static let defaultShardBytes = 5_000_000_000

    /// One shard: its file name and the tensors it holds, in order.
    struct Shard {
        var fileName: String
        var tensors: [(name: String, shape: [Int], bytes: Int)]
        var dataBytes: Int { tensors.reduce(0) { $0 + $1.bytes } }
    }

    /// Tensors in model order, a new shard whenever the next tensor would overflow `shardBytes`
    /// (as `save_pretrained` does; a tensor larger than a shard gets one of its own).
    static func planShards(_ source: SyntheticWeightSource, shardBytes: Int) -> [Shard] {
        var groups: [[(name: String, shape: [Int], bytes: Int)]] = [[]]
        var size = 0
        for name in source.tensorNames {
            let shape = source.tensorInfo(name)!.shape
            let bytes = shape.reduce(1, *) * 2
            if size > 0, size + bytes > shardBytes {
                groups.append([])
                size = 0
            }
            groups[groups.count - 1].append((name, shape, bytes))
            size += bytes
        }
        if groups.count == 1 { return [Shard(fileName: SafetensorsCheckpoint.singleFileName, tensors: groups[0])] }
        return groups.enumerated().map { index, tensors in
            Shard(fileName: String(format: "model-%05d-of-%06d.safetensors", index + 1, groups.count), tensors: tensors)
        }
    }

    /// The safetensors header of `shard` (length prefix + JSON padded to 8 bytes).
    static func header(_ shard: Shard) throws -> [UInt8] {
        var entries: [String: Any] = ["__metadata__": ["format": "pt"]]
        var offset = 0
        for tensor in shard.tensors {
            entries[tensor.name] = ["dtype": "BF16", "shape": tensor.shape, "data_offsets": [offset, offset + tensor.bytes]] as [String: Any]
            offset += tensor.bytes
        }
        var json = [UInt8](try JSONSerialization.data(withJSONObject: entries, options: [.sortedKeys]))
        while json.count % 8 != 0 { json.append(0x20) }
        var out: [UInt8] = []
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        return out + json
    }

    /// Writes the folder `destination` (which must not exist unless `overwrite`). `progress` is
    /// called after each tensor with bytes written so far.
    @discardableResult
    public static func write(_ source: SyntheticWeightSource, to destination: URL,
                             shardBytes: Int = defaultShardBytes, overwrite: Bool = false,
                             progress: ((ConversionProgress) -> Void)? = nil) throws -> SynthSummary {
        guard shardBytes > 0 else { throw SynthError.badShardSize(shardBytes) }
        let fileManager = FileManager.default
        if fileManager.fileExists(atPath: destination.path), !overwrite { throw SynthError.outputExists(path: destination.path) }
        let start = Date()
        let temporary = TemporaryOutput.begin(destination)
        try? fileManager.removeItem(at: temporary)
        var finished = false
        defer { if finished { TemporaryOutput.end(temporary) } else { TemporaryOutput.discard(temporary) } }
        do { try fileManager.createDirectory(at: temporary, withIntermediateDirectories: true) } catch {
            throw SynthError.cannotWrite(path: temporary.path, reason: error.localizedDescription)
        }

        try writeFile(source.configJSON, to: temporary.appendingPathComponent("config.json"))
        let shards = planShards(source, shardBytes: shardBytes)
        let totalBytes = shards.reduce(0) { $0 + $1.dataBytes }
        let tensorCount = source.tensorNames.count
        let largest = shards.flatMap(\.tensors).map(\.bytes).max() ?? 0
        let buffer = AlignedBuffer(byteCount: largest, alignment: 4096)
        var done = 0, bytesDone = 0
        for shard in shards {
            let path = temporary.appendingPathComponent(shard.fileName).path
            let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw SynthError.cannotWrite(path: path, reason: String(cString: strerror(errno))) }
            defer { close(fd) }
            let head = try header(shard)
            try head.withUnsafeBytes { try writeAll(fd, $0.baseAddress!, $0.count, path: path) }
            for tensor in shard.tensors {
                source.fill(name: tensor.name, shape: tensor.shape,
                            into: buffer.pointer.assumingMemoryBound(to: UInt16.self))
                try writeAll(fd, buffer.pointer, tensor.bytes, path: path)
                done += 1
                bytesDone += tensor.bytes
                progress?(ConversionProgress(tensorsDone: done, tensorCount: tensorCount, tensorName: tensor.name,
                                             inputBytesDone: bytesDone, inputBytesTotal: totalBytes,
                                             outputBytes: bytesDone, elapsedSeconds: Date().timeIntervalSince(start)))
            }
            guard fsync(fd) == 0 else { throw SynthError.cannotWrite(path: path, reason: "fsync: \(String(cString: strerror(errno)))") }
        }
        if shards.count > 1 {
            var weightMap: [String: String] = [:]
            for shard in shards { for tensor in shard.tensors { weightMap[tensor.name] = shard.fileName } }
            let index: [String: Any] = ["metadata": ["total_size": totalBytes], "weight_map": weightMap]
            var json = try JSONSerialization.data(withJSONObject: index, options: [.prettyPrinted, .sortedKeys])
            json.append(0x0A)
            try writeFile(json, to: temporary.appendingPathComponent(SafetensorsCheckpoint.indexFileName))
        }
        if fileManager.fileExists(atPath: destination.path) {
            do { try fileManager.removeItem(at: destination) } catch {
                throw SynthError.cannotWrite(path: destination.path, reason: "cannot replace: \(error.localizedDescription)")
            }
        }
        guard rename(temporary.path, destination.path) == 0 else {
            throw SynthError.cannotWrite(path: destination.path, reason: "rename: \(String(cString: strerror(errno)))")
        }
        finished = true
        var files = ["config.json"] + shards.map(\.fileName)
        if shards.count > 1 { files.append(SafetensorsCheckpoint.indexFileName) }
        let outputBytes = files.reduce(0) { sum, name in
            let attributes = try? fileManager.attributesOfItem(atPath: destination.appendingPathComponent(name).path)
            return sum + ((attributes?[.size] as? Int) ?? 0)
        }
        return SynthSummary(files: files, outputBytes: outputBytes, seconds: Date().timeIntervalSince(start))
    }

    private static func writeFile(_ data: Data, to url: URL) throws {
        do { try data.write(to: url) } catch {
            throw SynthError.cannotWrite(path: url.path, reason: error.localizedDescription)
        }
    }

    private static func writeAll(_ fd: Int32, _ pointer: UnsafeRawPointer, _ count: Int, path: String) throws {
        var written = 0
        while written < count {
            let n = Glibc.write(fd, pointer + written, min(count - written, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw SynthError.cannotWrite(path: path, reason: String(cString: strerror(errno)))
            }
            written += n
        }
    }
}
