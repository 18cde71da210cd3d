import ArgumentParser
import DSV2Analysis
import DSV2Container
import DSV2Core
import DSV2Reference
import DSV2Text
import Foundation
#if canImport(Glibc)
import Glibc
#endif

// Shared by `dsv2 dump`, `dsv2 compare` and `dsv2 perplexity`: which engine to run, on which
// token ids, and how failures map to exit codes.

/// An engine named on the command line: `reference`, `reference:absorbed`, `quantized:q8`, `quantized:q4`.
struct EngineSpec: CustomStringConvertible {
    enum Kind: String { case reference, quantized }
    var kind: Kind
    /// `expanded`/`absorbed` for the reference, the weight type (`q8`, `q4`, …) for the quantized engine.
    var variant: String?

    var description: String { variant.map { "\(kind.rawValue):\($0)" } ?? kind.rawValue }

    init(kind: Kind, variant: String?) {
        self.kind = kind
        self.variant = variant
    }

    init(parsing text: String) throws {
        let parts = text.trimmingCharacters(in: .whitespaces).split(separator: ":", maxSplits: 1).map(String.init)
        guard let first = parts.first, let kind = Kind(rawValue: first.lowercased()) else {
            throw UsageError("unknown engine '\(text)' (expected reference[:expanded|:absorbed] or quantized:<q8|q4|…>)")
        }
        self.kind = kind
        variant = parts.count > 1 ? parts[1].lowercased() : nil
        if kind == .reference, let variant, AttentionForm(rawValue: variant) == nil {
            throw UsageError("unknown reference variant '\(variant)' in '\(text)' (expected expanded or absorbed)")
        }
    }

    static func parseList(_ text: String) throws -> [EngineSpec] {
        try text.split(separator: ",", omittingEmptySubsequences: false).map { try EngineSpec(parsing: String($0)) }
    }

    /// Loads the engine through the shared factory (`makeEngine`): a Hugging Face folder for
    /// both engines (the quantized one quantizes it while loading with the preset `variant`, q8 by
    /// default), or a `.dsv2` container for the quantized engine (its stored types, or `variant`).
    func load(model: URL, threads: Int?) throws -> LanguageModel {
        switch kind {
        case .reference:
            let form = variant.flatMap(AttentionForm.init(rawValue:)) ?? .expanded
            return try makeEngine(kind: .reference, modelPath: model, attentionForm: form)
        case .quantized:
            return try makeEngine(kind: .quantized, modelPath: model, quant: variant, threads: threads)
        }
    }

    /// Runs this engine once over `tokens` (logits for every row) and keeps the traced names
    /// matching `patterns`, plus `input_ids`: the same tensors `dsv2 dump` writes.
    func trace(model: URL, tokens: [Int32], patterns: [String], threads: Int?) throws -> TensorSet {
        let languageModel = try load(model: model, threads: threads)
        let tracer = RecordingTracer(patterns: patterns)
        _ = try languageModel.forward(tokens: tokens, logits: .all, tracer: tracer)
        var set = TensorSet(label: description, tracer: tracer)
        set.tensors["input_ids"] = TracedTensor(shape: [tokens.count], int32s: tokens)
        return set
    }
}

/// A mistake in how the command was called or in its inputs: printed, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

enum AnalysisCLI {
    /// Runs `body`; any error is printed as `dsv2 <command>: error: …` and becomes exit status 2,
    /// so status 1 stays reserved for "compared, and a threshold broke".
    static func exitingOnError<T>(_ command: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let code as ExitCode {
            throw code
        } catch {
            printError("dsv2 \(command): error: \(error)")
            throw ExitCode(2)
        }
    }

    static func printError(_ message: String) {
        FileHandle.standardError.write(Data((message + "\n").utf8))
    }

    static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) != 0 }
    static var stderrIsTerminal: Bool { isatty(STDERR_FILENO) != 0 }

    /// The input of a traced run: `--ids`, or `--prompt` encoded with the model's tokenizer (with
    /// BOS when its config asks for it), or else the `input_ids` of `<model>/golden.safetensors`.
    static func inputIDs(model: URL, ids: String?, prompt: String?) throws -> [Int32] {
        if ids != nil && prompt != nil { throw UsageError("give either --ids or --prompt, not both") }
        if let ids { return try parseTokenIDs(ids) }
        if let prompt {
            let tokenizer = try loadTokenizer(model: model)
            let encoded = try tokenizer.encode(prompt, addSpecialTokens: true).map { Int32($0) }
            guard !encoded.isEmpty else { throw UsageError("--prompt encodes to no tokens") }
            return encoded
        }
        let golden = model.appendingPathComponent("golden.safetensors")
        guard FileManager.default.fileExists(atPath: golden.path) else {
            throw UsageError("no input: give --ids 1,2,3 or --prompt \"text\" (\(model.path) has no golden.safetensors to take input_ids from)")
        }
        return try SafetensorsFile(url: golden).int32s("input_ids")
    }

    /// The tokenizer of a model: `tokenizer.json` (+ `tokenizer_config.json`) in a model folder,
    /// or the copies embedded in a `.dsv2` container.
    static func loadTokenizer(model: URL) throws -> Tokenizer {
        if isDirectory(model) {
            let file = model.appendingPathComponent("tokenizer.json")
            guard FileManager.default.fileExists(atPath: file.path) else {
                throw UsageError("\(model.path) has no tokenizer.json: the text cannot be encoded (use --ids, or a model folder with its tokenizer)")
            }
            return try Tokenizer.load(from: model)
        }
        let files = try ContainerReader(path: model.path).tokenizerFiles
        guard let json = files["tokenizer.json"] else {
            throw UsageError("\(model.path) holds no tokenizer.json: the text cannot be encoded (use --ids)")
        }
        return try Tokenizer(tokenizerJSON: json, configJSON: files["tokenizer_config.json"],
                             path: model.path + ":tokenizer.json", configPath: model.path + ":tokenizer_config.json")
    }

    static func isDirectory(_ url: URL) -> Bool {
        var isDirectory: ObjCBool = false
        return FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
    }

    /// A directory the user named must exist and hold config.json.
    static func modelURL(_ path: String) throws -> URL {
        let url = URL(fileURLWithPath: path)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw UsageError("--model \(path): no such file or folder")
        }
        if isDirectory.boolValue, !FileManager.default.fileExists(atPath: url.appendingPathComponent("config.json").path) {
            throw UsageError("--model \(path): the folder has no config.json")
        }
        return url
    }
}
