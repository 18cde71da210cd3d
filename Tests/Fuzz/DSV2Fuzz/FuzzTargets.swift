import DSV2Container
import DSV2Core
import DSV2GGUF
import DSV2Text
import Foundation

/// The fuzz targets: one entry per parser, each taking the raw bytes libFuzzer (or a committed
/// corpus file) supplies. An entry either returns or throws the parser's error; a trap, a signal,
/// a hang or runaway memory is a bug. `scripts/fuzz` runs them under libFuzzer (the `dsv2-fuzz`
/// executable, `Main/`); `FuzzTests` replays `Tests/Fuzz/corpus/<target>/` through the same
/// entries in the normal test suite.
///
/// Adding a target: one line in `all`, a function below, and a folder of seeds in the corpus.
/// Inputs made of several files separate them with a 0 byte, which valid JSON cannot contain.
public enum FuzzTargets {
    public static let all: [String: (Data) throws -> Void] = [
        "json": json,
        "tokenizer": tokenizer,
        "chat-template": chatTemplate,
        "safetensors": safetensors,
        "safetensors-index": safetensorsIndex,
        "config": config,
        "container": container,
        "gguf": gguf,
    ]

    public static var names: [String] { all.keys.sorted() }

    /// Runs `target` on `data`, returning its error (nil when the input was accepted).
    public static func run(_ target: String, _ data: Data) -> Error? {
        guard let entry = all[target] else { return FuzzError("no fuzz target \(target); known: \(names)") }
        do { try entry(data) } catch { return error }
        return nil
    }

    /// `data` split at 0 bytes into at most `count` parts (missing parts are empty). memchr,
    /// not `split`: the fuzzer instruments every byte comparison of a Swift loop, which made
    /// the split a fifth of the container target's time.
    static func parts(_ data: Data, _ count: Int) -> [Data] {
        let bytes = [UInt8](data)
        var parts: [Data] = []
        var start = 0
        bytes.withUnsafeBytes { raw in
            while parts.count < count - 1, start <= raw.count,
                  let zero = memchr(raw.baseAddress! + start, 0, raw.count - start) {
                let end = UnsafeRawPointer(zero) - raw.baseAddress!
                parts.append(Data(bytes[start..<end]))
                start = end + 1
            }
        }
        parts.append(Data(bytes[min(start, bytes.count)...]))
        while parts.count < count { parts.append(Data()) }
        return parts
    }

    // MARK: Targets

    /// Parse; whatever parses must print and parse back to the same value.
    static func json(_ data: Data) throws {
        let value = try JSONValue.parse(data)
        let again = try JSONValue.parse(value.serialized)
        guard again == value else { fatalError("JSON round trip changed the value: \(value.serialized)") }
    }

    /// tokenizer.json \0 tokenizer_config.json \0 text: load, encode, decode (the encoding's ids
    /// and arbitrary ones, at once and streaming), render the chat template.
    static func tokenizer(_ data: Data) throws {
        let p = parts(data, 3)
        let tok = try Tokenizer(tokenizerJSON: p[0], configJSON: p[1].isEmpty ? nil : p[1])
        let text = String(decoding: p[2], as: UTF8.self)
        let ids = try tok.encode(text, addSpecialTokens: true)
        _ = tok.decode(ids)
        let arbitrary = p[2].prefix(256).enumerated().map { Int($1) * 131 + $0 - 300 }
        for skip in [false, true] {
            _ = tok.decode(arbitrary, skipSpecialTokens: skip)
            var stream = tok.streamingDecoder(skipSpecialTokens: skip)
            for id in ids.prefix(64) + arbitrary.prefix(64) { _ = try stream.step(id) }
        }
        if tok.chatTemplate != nil {
            _ = try tok.encodeChat([ChatMessage(role: "user", content: text), ChatMessage(role: "assistant", content: "ok")],
                                   addGenerationPrompt: true)
        }
    }

    /// template \0 context JSON: parse, then render with the context's variables (or a short chat).
    static func chatTemplate(_ data: Data) throws {
        let p = parts(data, 2)
        let template = try ChatTemplate(String(decoding: p[0], as: UTF8.self))
        if let context = (try? JSONValue.parse(p[1]))?.objectValue {
            var variables: [String: JSONValue] = [:]
            for (key, value) in context { variables[key] = value }
            _ = try template.render(context: variables)
        } else {
            _ = try template.render(messages: [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U")],
                                    addGenerationPrompt: true, bosToken: "<s>", eosToken: "</s>")
        }
    }

    /// One .safetensors file: open, then read every tensor.
    static func safetensors(_ data: Data) throws {
        let file = try scratch.write(data, to: "fuzz.safetensors")
        let opened = try SafetensorsFile(url: file)
        for name in opened.tensorNames.prefix(64) { try touch(opened.info(name), try opened.rawBytes(name)) }
    }

    /// model.safetensors.index.json \0 shard: a checkpoint folder with one shard named
    /// `model-00001-of-00001.safetensors`; open it and read every tensor.
    static func safetensorsIndex(_ data: Data) throws {
        let p = parts(data, 2)
        let folder = try scratch.folder("checkpoint")
        _ = try scratch.write(p[0], to: "checkpoint/" + SafetensorsCheckpoint.indexFileName)
        _ = try scratch.write(p[1], to: "checkpoint/model-00001-of-00001.safetensors")
        let checkpoint = try SafetensorsCheckpoint(url: folder)
        for name in checkpoint.tensorNames.prefix(64) { try touch(checkpoint.info(name), try checkpoint.rawBytes(name)) }
    }

    /// config.json: decode, validate, and the sizes derived from it.
    static func config(_ data: Data) throws {
        let config = try ModelConfig.decode(data, file: "config.json")
        try config.validate()
        _ = (config.qHeadDim, config.kvBProjDim, config.latentCacheWidth, config.sharedExpertsIntermediateSize,
             config.moeLayers, config.softmaxScale, config.ropeAmplitude, config.parameterCount)
    }

    /// A .dsv2 container: given whole when the first byte is 0, else built from the input
    /// `metadata JSON \0 data` as header, data, metadata, with the header and the metadata
    /// checksum made to match so that the fuzzer reaches the table (offsets in the metadata count
    /// from the start of the file: data begins at 64, as in a real container). Opens it and reads
    /// every tensor and embedded file.
    static func container(_ data: Data) throws {
        let bytes = data.first == 0 ? data.dropFirst() : wrappedInContainer(data)
        let file = try scratch.write(Data(bytes), to: "fuzz.dsv2")
        let reader = try ContainerReader(path: file.path, verifyRawTensors: true)
        for name in reader.tensorNames.prefix(64) { _ = try reader.tensor(name) }
        _ = try ModelConfig.decode(reader.configJSON, file: "config.json (embedded)")
        if let json = reader.tokenizerFiles["tokenizer.json"] {
            _ = try Tokenizer(tokenizerJSON: json, configJSON: reader.tokenizerFiles["tokenizer_config.json"])
        }
    }

    /// A GGUF file: header, metadata and tensor table, the config and tokenizer derived from the
    /// metadata, every readable tensor dequantized (`GGUFFile.fuzzEntry`); then the tokenizer
    /// loaded and used, and the file opened as a model (`GGUFSource`: tensors matched against the
    /// config, each fetched under its Hugging Face name, as the engines load it).
    static func gguf(_ data: Data) throws {
        let file = try GGUFFile.fuzzEntry(data)
        if let files = try? GGUFTokenizerFiles.tokenizerFiles(file), let json = files["tokenizer.json"] {
            let tok = try Tokenizer(tokenizerJSON: json, configJSON: files["tokenizer_config.json"])
            let ids = try tok.encode("Hello world 123, 你好 ok?", addSpecialTokens: true)
            _ = tok.decode(ids)
        }
        let source = try GGUFSource(file: file)
        for name in source.tensorNames.prefix(64) { _ = try source.tensor(name) }
    }

    /// The container format's 64-byte header (magic, version, header size, metadata offset,
    /// size and XXH64, file size, header XXH64), then the data, then the metadata.
    static func wrappedInContainer(_ data: Data) -> Data {
        let p = parts(data, 2)
        let headerSize = ContainerFormat.headerSize
        var header = [UInt8](repeating: 0, count: headerSize)
        func put<T: FixedWidthInteger>(_ value: T, at offset: Int) {
            withUnsafeBytes(of: value.littleEndian) { for (i, b) in $0.enumerated() { header[offset + i] = b } }
        }
        header.replaceSubrange(0..<8, with: ContainerFormat.magic)
        put(ContainerFormat.version, at: 8)
        put(UInt32(headerSize), at: 12)
        put(UInt64(headerSize + p[1].count), at: 16)
        put(UInt64(p[0].count), at: 24)
        put(XXH64.hash(bytes: p[0]), at: 32)
        put(UInt64(headerSize + p[0].count + p[1].count), at: 40)
        put(XXH64.hash(bytes: header[0..<56]), at: 56)
        return Data(header) + p[1] + p[0]
    }

    /// Reads every byte of a tensor (the checks must have kept it inside the mapping).
    private static func touch(_ info: SafetensorsTensorInfo, _ bytes: UnsafeRawBufferPointer) throws {
        guard bytes.count == info.byteCount else { fatalError("\(info.name): \(bytes.count) bytes, info says \(info.byteCount)") }
        var sum: UInt8 = 0
        for b in bytes { sum &+= b }
        _ = sum
    }

    /// Where the file-based targets write their input: one folder per process, reused, removed
    /// at exit.
    private static let scratch: ScratchFolder = {
        atexit { try? FileManager.default.removeItem(at: FuzzTargets.scratch.url) }
        return ScratchFolder()
    }()
}

/// A target's own error (unknown target name).
public struct FuzzError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// A temporary folder for the file-based targets.
final class ScratchFolder: Sendable {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("dsv2-fuzz-\(getpid())-\(UUID().uuidString)")

    func folder(_ name: String) throws -> URL {
        let folder = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        return folder
    }

    func write(_ data: Data, to name: String) throws -> URL {
        let file = url.appendingPathComponent(name)
        try FileManager.default.createDirectory(at: file.deletingLastPathComponent(), withIntermediateDirectories: true)
        try data.write(to: file)
        return file
    }
}
