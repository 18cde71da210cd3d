import DSV2Core
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a command needs to run a GGUF model: `Model.open` calls here for `.gguf` files.
public enum GGUFModel {
    /// Whether the file at `url` starts with the GGUF magic or is named `.gguf` (so a damaged
    /// one is reported as a bad GGUF file). Only a regular file is read: opening a FIFO or device
    /// would block or consume it.
    public static func isGGUF(_ url: URL) -> Bool {
        var info = stat()
        guard stat(url.path, &info) == 0, info.st_mode & S_IFMT == S_IFREG else { return false }
        if url.pathExtension.lowercased() == "gguf" { return true }
        guard let handle = FileHandle(forReadingAtPath: url.path) else { return false }
        defer { try? handle.close() }
        return Array(handle.readData(ofLength: 4)) == GGUFFormat.magic
    }

    /// Opens a DeepSeek-V2 GGUF file: its config, its tokenizer files (tokenizer.json and
    /// tokenizer_config.json synthesised from `tokenizer.ggml.*`; empty when it has none) and
    /// its tensors as a `WeightSource` under Hugging Face names.
    public static func open(path: String) throws -> (config: ModelConfig, tokenizerFiles: [String: Data], weights: GGUFSource) {
        let source = try GGUFSource(path: path)
        return (source.config, source.tokenizerFiles, source)
    }
}
