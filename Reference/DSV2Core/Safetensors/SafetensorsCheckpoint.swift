import Foundation

/// A Hugging Face checkpoint's tensors: one `model.safetensors`, or the shards listed by
/// `model.safetensors.index.json` (`{"weight_map": {tensor: file}}`), or a single `.safetensors`
/// file given directly.
///
/// All files are memory-mapped and their headers validated when the checkpoint is opened; a
/// tensor's bytes are only touched when asked for, so the converter can stream tensor by tensor.
/// Raw byte buffers stay valid while the checkpoint object is alive.
public final class SafetensorsCheckpoint: @unchecked Sendable {
    /// The folder (or the file, when opened on a single file).
    public let url: URL
    /// The opened files, in shard order.
    public let files: [SafetensorsFile]
    /// All tensor names, sorted.
    public let tensorNames: [String]
    /// The file that lists the tensors: the index, or the one safetensors file (errors about
    /// the table as a whole name it).
    public let tableFile: URL
    private let fileOfTensor: [String: SafetensorsFile]

    public static let indexFileName = "model.safetensors.index.json"
    public static let singleFileName = "model.safetensors"

    /// Opens a checkpoint folder (sharded or single file) or one `.safetensors` file.
    public init(url: URL) throws {
        self.url = url
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw SafetensorsError.cannotOpen(file: url.path, reason: "no such file or folder")
        }
        if !isDirectory.boolValue {
            let file = try SafetensorsFile(url: url)
            files = [file]
            tensorNames = file.tensorNames.sorted()
            fileOfTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
            tableFile = url
            return
        }
        let index = url.appendingPathComponent(Self.indexFileName)
        let single = url.appendingPathComponent(Self.singleFileName)
        if FileManager.default.fileExists(atPath: index.path) {
            let weightMap = try Self.readWeightMap(index)
            var opened: [String: SafetensorsFile] = [:]
            var order: [SafetensorsFile] = []
            var map: [String: SafetensorsFile] = [:]
            for fileName in Set(weightMap.values).sorted() {
                guard !fileName.hasPrefix("/"), !fileName.contains("..") else {
                    throw SafetensorsError.badIndex(file: index.path, reason: "shard name \"\(fileName)\" leaves the folder")
                }
                let shardURL = url.appendingPathComponent(fileName)
                var shardIsFolder: ObjCBool = false
                guard FileManager.default.fileExists(atPath: shardURL.path, isDirectory: &shardIsFolder) else {
                    throw SafetensorsError.badIndex(file: index.path, reason: "shard \(fileName) listed in weight_map does not exist")
                }
                guard !shardIsFolder.boolValue else {
                    throw SafetensorsError.badIndex(file: index.path, reason: "shard \"\(fileName)\" listed in weight_map is a folder, not a file")
                }
                let shard = try SafetensorsFile(url: shardURL)
                opened[fileName] = shard
                order.append(shard)
            }
            for (tensor, fileName) in weightMap {
                let shard = opened[fileName]!
                guard shard.contains(tensor) else {
                    throw SafetensorsError.badIndex(file: index.path, reason: "weight_map puts tensor \"\(tensor)\" in \(fileName), which does not hold it")
                }
                map[tensor] = shard
            }
            files = order
            fileOfTensor = map
            tensorNames = map.keys.sorted()
            tableFile = index
        } else if FileManager.default.fileExists(atPath: single.path) {
            let file = try SafetensorsFile(url: single)
            files = [file]
            tensorNames = file.tensorNames.sorted()
            fileOfTensor = Dictionary(uniqueKeysWithValues: file.tensorNames.map { ($0, file) })
            tableFile = single
        } else {
            throw SafetensorsError.cannotOpen(file: url.path, reason: "the folder holds neither \(Self.singleFileName) nor \(Self.indexFileName)")
        }
    }

    private static func readWeightMap(_ index: URL) throws -> [String: String] {
        let data: Data
        do { data = try Data(contentsOf: index) } catch {
            throw SafetensorsError.badIndex(file: index.path, reason: "cannot be read")
        }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw SafetensorsError.badIndex(file: index.path, reason: "not a JSON object")
        }
        guard let map = object["weight_map"] as? [String: Any] else {
            throw SafetensorsError.badIndex(file: index.path, reason: "weight_map is missing or not an object")
        }
        var result: [String: String] = [:]
        for (tensor, value) in map {
            guard let file = value as? String else {
                throw SafetensorsError.badIndex(file: index.path, reason: "weight_map entry for \"\(tensor)\" is not a file name")
            }
            result[tensor] = file
        }
        return result
    }

    public func contains(_ name: String) -> Bool { fileOfTensor[name] != nil }

    private func file(of name: String) throws -> SafetensorsFile {
        guard let file = fileOfTensor[name] else {
            throw SafetensorsError.missingTensor(tensor: name, checkpoint: url.path)
        }
        return file
    }

    /// dtype, shape and the file holding `name`.
    public func info(_ name: String) throws -> SafetensorsTensorInfo { try file(of: name).info(name) }

    /// The tensor's raw little-endian bytes (valid while the checkpoint is alive).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer { try file(of: name).rawBytes(name) }

    /// The tensor widened to fp32 (F32, F16, BF16 exactly; F64 rounded).
    public func floats(_ name: String) throws -> [Float] { try file(of: name).floats(name) }

    /// The tensor widened to fp32, after checking its shape (an error names tensor and file).
    public func floats(_ name: String, shape: [Int]) throws -> [Float] {
        try checkShape(name, shape)
        return try floats(name)
    }

    /// `floats(name, shape:)` with every value finite: a NaN or infinity is an error naming the
    /// tensor, file, row and column (a model would run it and emit garbage).
    public func finiteFloats(_ name: String, shape: [Int]) throws -> [Float] {
        let values = try floats(name, shape: shape)
        if let index = values.withUnsafeBytes({ FloatFormat.f32.firstNonFinite(in: $0) }) {
            throw try nonFinite(name, index: index)
        }
        return values
    }

    /// Checks in place that every value of float tensor `name` is finite (reads all its bytes),
    /// with the error of `finiteFloats`.
    public func checkFinite(_ name: String) throws {
        let info = try info(name)
        guard let format = info.dtype.floatFormat else {
            _ = try finiteFloats(name, shape: info.shape)
            return
        }
        if let index = format.firstNonFinite(in: try rawBytes(name)) { throw try nonFinite(name, index: index) }
    }

    private func nonFinite(_ name: String, index: Int) throws -> SafetensorsError {
        let info = try info(name)
        let columns = max(info.shape.last ?? 1, 1)
        return .nonFinite(tensor: name, file: info.file.path, row: index / columns, column: index % columns)
    }

    /// The tensor as Int32 (I32, or I64 values that fit).
    public func int32s(_ name: String) throws -> [Int32] { try file(of: name).int32s(name) }

    /// Throws `wrongShape` naming the tensor and file unless `name` has shape `shape`.
    public func checkShape(_ name: String, _ shape: [Int]) throws {
        let info = try info(name)
        guard info.shape == shape else {
            throw SafetensorsError.wrongShape(tensor: name, file: info.file.path, expected: shape, found: info.shape)
        }
    }

    /// Checks the tensors against the config (`ModelConfig.tensorTableMismatch`): every expected
    /// tensor present with its shape, and no other. The first difference is the error.
    public func validate(against config: ModelConfig) throws {
        let mismatch = config.tensorTableMismatch(names: tensorNames) { name in try? info(name).shape }
        switch mismatch {
        case nil: return
        case let .missing(tensor, _):
            throw SafetensorsError.missingTensor(tensor: tensor, checkpoint: tableFile.path + " (expected by config.json)")
        case let .wrongShape(tensor, expected, found):
            throw SafetensorsError.wrongShape(tensor: tensor, file: (try? info(tensor).file.path) ?? url.path, expected: expected, found: found)
        case let .unexpected(tensor, reason):
            throw SafetensorsError.badTensorEntry(file: (try? info(tensor).file.path) ?? url.path, tensor: tensor, reason: "not expected by config.json: \(reason)")
        }
    }
}
