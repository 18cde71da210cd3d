import DSV2Container
import DSV2Converter
import DSV2Core
import DSV2Formats
import DSV2GGUF
import Foundation

/// The GGUF side of `convert`, `inspect` and `export` (DSV2GGUF does the work).
enum GGUFCLI {
    static func isGGUF(_ path: String) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && !isDirectory.boolValue
            && GGUFModel.isGGUF(URL(fileURLWithPath: path))
    }

    /// A GGUF file as a conversion source, with its provenance (name, size, XXH64).
    static func conversionSource(_ url: URL) throws -> (source: GGUFSource, provenance: ContainerProvenance) {
        let source = try GGUFSource(path: url.path)
        let provenance = ContainerProvenance(sourceFormat: "gguf", sourceName: url.lastPathComponent,
                                             files: [try Converter.sourceFile(url)])
        return (source, provenance)
    }

    /// The label of a container converted from a GGUF as stored: `gguf:` and its matrices' types.
    static func storedLabel(_ source: GGUFSource) -> String {
        let types = Set(source.file.tensors.filter { $0.dimensions.count > 1 }.map(\.type.description))
        return "gguf:" + types.sorted().joined(separator: "+")
    }

    /// `dsv2 inspect x.gguf`: metadata, then the tensor table with types and sizes.
    static func inspect(_ path: String, all: Bool, json: Bool, dumpValues: String?) throws {
        let file = try GGUFFile(path: path)
        if let dumpValues { try writeValues(file, to: dumpValues) }
        var byType: [String: (count: Int, bytes: Int)] = [:]
        for t in file.tensors {
            byType[t.type.description, default: (0, 0)].count += 1
            byType[t.type.description, default: (0, 0)].bytes += t.byteCount
        }
        if json {
            struct Tensor: Codable { var name: String; var type: String; var ne: [Int]; var shape: [Int]; var offset: Int; var bytes: Int }
            struct Report: Codable {
                var path: String; var version: UInt32; var fileSize: Int; var alignment: Int; var dataOffset: Int
                var metadata: [String: String]; var tensors: [Tensor]
            }
            let report = Report(path: path, version: file.version, fileSize: file.fileSize, alignment: file.alignment,
                                dataOffset: file.dataOffset,
                                metadata: Dictionary(file.metadata.map { ($0.key, $0.value.summary) }, uniquingKeysWith: { a, _ in a }),
                                tensors: file.tensors.map { Tensor(name: $0.name, type: $0.type.description, ne: $0.dimensions,
                                                                  shape: $0.shape, offset: $0.offset, bytes: $0.byteCount) })
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
            return
        }
        print("\(path): GGUF v\(file.version), \(file.metadata.count) metadata keys, \(file.tensors.count) tensors, "
              + "\(ProgressReporter.bytes(file.fileSize)), data at \(file.dataOffset) (alignment \(file.alignment))")
        do {
            let config = try GGUFModelMetadata.modelConfig(file)
            print("config: \(config.numHiddenLayers) layers, hidden \(config.hiddenSize), \(config.numAttentionHeads) heads, "
                  + "vocab \(config.vocabSize), q_lora_rank \(config.qLoraRank.map(String.init) ?? "null"), kv_lora_rank \(config.kvLoraRank), "
                  + "experts \(config.nRoutedExperts ?? 0) routed + \(config.nSharedExperts ?? 0) shared (top-\(config.numExpertsPerTok ?? 0), \(config.topkMethod.rawValue))")
        } catch {
            print("config: not a DeepSeek-V2 model dsv2 can run (\(error))")
        }
        print("")
        for (key, value) in file.metadata { print("  \(key) = \(value.summary)") }
        print("")
        func line(_ a: String, _ b: String, _ c: String, _ d: String) {
            print(a.padding(toLength: max(a.count, 40), withPad: " ", startingAt: 0) + "  " + b.padding(toLength: 7, withPad: " ", startingAt: 0)
                  + c.padding(toLength: 22, withPad: " ", startingAt: 0) + String(repeating: " ", count: max(0, 12 - d.count)) + d)
        }
        line("tensor", "type", "shape", "bytes")
        for t in file.tensors where all || !t.name.hasPrefix("blk.") || t.name.hasPrefix("blk.0.") {
            line(t.name, t.type.description, "\(t.shape)", "\(t.byteCount)")
        }
        if !all, file.tensors.contains(where: { $0.name.hasPrefix("blk.") && !$0.name.hasPrefix("blk.0.") }) {
            print("… (blocks 1 and up like block 0; --all lists every tensor)")
        }
        print("")
        for (type, total) in byType.sorted(by: { $0.key < $1.key }) {
            line("total \(type) (\(total.count) tensors)", type, "", "\(total.bytes)")
        }
    }

    /// Every readable tensor's values as little-endian f32, in table order (for checks against
    /// another reader, e.g. gguf-py in .ci/run).
    static func writeValues(_ file: GGUFFile, to path: String) throws {
        _ = FileManager.default.createFile(atPath: path, contents: nil)
        guard let handle = FileHandle(forWritingAtPath: path) else { throw GGUFError(path: path, "cannot be written", writing: true) }
        defer { try? handle.close() }
        for t in file.tensors {
            guard t.type.isReadable else { throw GGUFError(path: file.path, subject: t.name, "type \(t.type) cannot be read") }
            let values = try GGMLBlocks.dequantize(file.bytes(of: t), type: t.type, count: t.elementCount)
            try handle.write(contentsOf: values.withUnsafeBytes { Data($0) })
        }
    }
}
