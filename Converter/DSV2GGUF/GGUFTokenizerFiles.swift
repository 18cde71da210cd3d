import Foundation

/// The tokenizer of a GGUF file (`tokenizer.ggml.*`, `tokenizer.chat_template`) ↔ Hugging Face
/// `tokenizer.json` + `tokenizer_config.json`, so the project's tokenizer loads a GGUF's
/// vocabulary unchanged and an exported file carries the tokenizer as llama.cpp's converter
/// writes it (`_set_vocab_gpt2`).
///
/// Token types (gguf-py `TokenType`): NORMAL (1) tokens form the BPE vocabulary, CONTROL (3) are
/// special added tokens, USER_DEFINED (4) non-special added tokens, UNUSED (5) the `[PADn]`
/// fillers up to the config's vocab_size (left out of tokenizer.json).
public enum GGUFTokenizerFiles {
    enum TokenType: Int { case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6 }

    /// tokenizer.json and tokenizer_config.json synthesised from the metadata; empty when the
    /// file has no tokenizer. Errors name the key.
    public static func tokenizerFiles(_ file: GGUFFile) throws -> [String: Data] {
        guard let modelValue = file.value("tokenizer.ggml.model") else { return [:] }
        func fail(_ key: String, _ message: String) -> GGUFError { GGUFError(path: file.path, subject: key, message) }
        guard modelValue.stringValue == "gpt2" else {
            throw fail("tokenizer.ggml.model", "is \(modelValue.summary); only \"gpt2\" (byte-level BPE, DeepSeek-V2's) is supported")
        }
        let preName = file.value("tokenizer.ggml.pre")?.stringValue ?? "(missing)"
        guard let preJSON = GGUFPreTokenizers.byName[preName] else {
            throw fail("tokenizer.ggml.pre", "\"\(preName)\" is not supported (supported: \(GGUFPreTokenizers.byName.keys.sorted().joined(separator: ", ")))")
        }
        guard let tokenValues = file.value("tokenizer.ggml.tokens")?.arrayValue else { throw fail("tokenizer.ggml.tokens", "is missing or not an array") }
        let tokens = try tokenValues.map { value -> String in
            guard let s = value.stringValue else { throw fail("tokenizer.ggml.tokens", "holds a non-string") }
            return s
        }
        var types = [Int](repeating: TokenType.normal.rawValue, count: tokens.count)
        if let typeValues = file.value("tokenizer.ggml.token_type")?.arrayValue {
            guard typeValues.count == tokens.count else {
                throw fail("tokenizer.ggml.token_type", "has \(typeValues.count) entries for \(tokens.count) tokens")
            }
            types = try typeValues.map { value in
                guard let t = value.intValue else { throw fail("tokenizer.ggml.token_type", "holds a non-integer") }
                return t
            }
        }
        guard let mergeValues = file.value("tokenizer.ggml.merges")?.arrayValue else { throw fail("tokenizer.ggml.merges", "is missing or not an array") }
        let merges = try mergeValues.map { value -> String in
            guard let s = value.stringValue, s.split(separator: " ", omittingEmptySubsequences: false).count == 2 else {
                throw fail("tokenizer.ggml.merges", "holds \(value.summary), not \"left right\"")
            }
            return s
        }

        var vocab: [String: Int] = [:]
        var added: [[String: Any]] = []
        for (id, token) in tokens.enumerated() {
            switch TokenType(rawValue: types[id]) {
            case .normal?, .unknown?, .byte?:
                guard vocab[token] == nil else { throw fail("tokenizer.ggml.tokens", "token \"\(token)\" appears twice (ids \(vocab[token]!) and \(id))") }
                vocab[token] = id
            case .control?, .userDefined?:
                added.append(["id": id, "content": token, "single_word": false, "lstrip": false, "rstrip": false,
                              "normalized": true, "special": types[id] == TokenType.control.rawValue])
            case .unused?:
                continue
            case nil:
                throw fail("tokenizer.ggml.token_type", "token \(id) has unknown type \(types[id])")
            }
        }
        let byteLevel: [String: Any] = ["type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true]
        let tokenizer: [String: Any] = [
            "version": "1.0", "truncation": NSNull(), "padding": NSNull(),
            "added_tokens": added,
            "normalizer": ["type": "Sequence", "normalizers": [Any]()],
            "pre_tokenizer": try JSONSerialization.jsonObject(with: Data(preJSON.utf8)),
            "post_processor": byteLevel,
            "decoder": byteLevel.merging(["trim_offsets": true]) { $1 },
            "model": ["type": "BPE", "dropout": NSNull(), "unk_token": NSNull(), "continuing_subword_prefix": NSNull(),
                      "end_of_word_suffix": NSNull(), "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                      "vocab": vocab, "merges": merges] as [String: Any],
        ]

        func tokenText(_ key: String) throws -> String? {
            guard let value = file.value(key) else { return nil }
            guard let id = value.intValue, id < tokens.count else { throw fail(key, "\(value.summary) is not a token id (\(tokens.count) tokens)") }
            return tokens[id]
        }
        func flag(_ key: String) throws -> Bool? {
            guard let value = file.value(key) else { return nil }
            guard let b = value.boolValue else { throw fail(key, "must be a bool, got \(value.summary)") }
            return b
        }
        var config: [String: Any] = ["tokenizer_class": "LlamaTokenizerFast", "clean_up_tokenization_spaces": false,
                                     "add_bos_token": try flag("tokenizer.ggml.add_bos_token") ?? false,
                                     "add_eos_token": try flag("tokenizer.ggml.add_eos_token") ?? false]
        if let bos = try tokenText("tokenizer.ggml.bos_token_id") { config["bos_token"] = bos }
        if let eos = try tokenText("tokenizer.ggml.eos_token_id") { config["eos_token"] = eos }
        if let pad = try tokenText("tokenizer.ggml.padding_token_id") { config["pad_token"] = pad }
        if let template = file.value("tokenizer.chat_template") {
            guard let text = template.stringValue else { throw fail("tokenizer.chat_template", "must be a string") }
            config["chat_template"] = text
        }
        return ["tokenizer.json": try JSONSerialization.data(withJSONObject: tokenizer, options: [.sortedKeys]),
                "tokenizer_config.json": try JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys])]
    }

    /// A tokenizer.json / tokenizer_config.json that cannot be written as GGUF metadata.
    public struct ExportError: Error, CustomStringConvertible {
        public var file: String
        public var message: String
        public var description: String { "\(file): \(message)" }
    }

    /// The `tokenizer.*` metadata for `files` (tokenizer.json required; nothing when absent),
    /// padded with UNUSED `[PADn]` tokens up to `vocabSize` as llama.cpp's converter does.
    public static func metadata(for files: [String: Data], vocabSize: Int) throws -> [(String, GGUFValue)] {
        guard let json = files["tokenizer.json"] else { return [] }
        func fail(_ message: String) -> ExportError { ExportError(file: "tokenizer.json", message: message) }
        guard let root = try JSONSerialization.jsonObject(with: json) as? [String: Any],
              let model = root["model"] as? [String: Any] else { throw fail("has no model object") }
        guard (model["type"] as? String ?? "BPE") == "BPE", let vocab = model["vocab"] as? [String: Int] else {
            throw fail("model is not a BPE vocabulary")
        }
        guard let pre = root["pre_tokenizer"], let preData = try? JSONSerialization.data(withJSONObject: pre),
              let preName = GGUFPreTokenizers.byName.first(where: { entry in
                  (try? JSONSerialization.jsonObject(with: Data(entry.value.utf8)) as? NSDictionary)
                      == (try? JSONSerialization.jsonObject(with: preData) as? NSDictionary) })?.key else {
            throw fail("pre_tokenizer is not one llama.cpp names (supported: DeepSeek-V2's, \"deepseek-llm\")")
        }
        var texts = [String?](repeating: nil, count: vocabSize)
        var types = [Int](repeating: TokenType.unused.rawValue, count: vocabSize)
        for (token, id) in vocab {
            guard id >= 0, id < vocabSize else { throw fail("token id \(id) is outside the config's vocab_size \(vocabSize)") }
            texts[id] = token
            types[id] = TokenType.normal.rawValue
        }
        for item in root["added_tokens"] as? [[String: Any]] ?? [] {
            guard let id = item["id"] as? Int, let content = item["content"] as? String, id >= 0, id < vocabSize else {
                throw fail("added token \(item) is malformed or outside vocab_size \(vocabSize)")
            }
            texts[id] = content
            let special = item["special"] as? Bool ?? false
            types[id] = special || looksSpecial(content) ? TokenType.control.rawValue : TokenType.userDefined.rawValue
        }
        let tokens = texts.enumerated().map { GGUFValue.string($0.element ?? "[PAD\($0.offset)]") }
        let merges: [GGUFValue] = try (model["merges"] as? [Any] ?? []).map { item in
            if let s = item as? String { return .string(s) }
            if let pair = item as? [String], pair.count == 2 { return .string(pair[0] + " " + pair[1]) }
            throw fail("merge \(item) is neither \"a b\" nor [a, b]")
        }
        var kv: [(String, GGUFValue)] = [
            ("tokenizer.ggml.model", .string("gpt2")),
            ("tokenizer.ggml.pre", .string(preName)),
            ("tokenizer.ggml.tokens", .array(.string, tokens)),
            ("tokenizer.ggml.token_type", .array(.int32, types.map { .int(Int64($0), .int32) })),
            ("tokenizer.ggml.merges", .array(.string, merges)),
        ]
        var config: [String: Any] = [:]
        if let data = files["tokenizer_config.json"] {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw ExportError(file: "tokenizer_config.json", message: "is not a JSON object")
            }
            config = object
        }
        func id(of key: String) -> Int? {
            let content = (config[key] as? String) ?? ((config[key] as? [String: Any])?["content"] as? String)
            return content.flatMap { c in texts.firstIndex(of: c) }
        }
        if let bos = id(of: "bos_token") { kv.append(("tokenizer.ggml.bos_token_id", .uint(UInt64(bos), .uint32))) }
        if let eos = id(of: "eos_token") { kv.append(("tokenizer.ggml.eos_token_id", .uint(UInt64(eos), .uint32))) }
        if let pad = id(of: "pad_token") { kv.append(("tokenizer.ggml.padding_token_id", .uint(UInt64(pad), .uint32))) }
        if let addBos = config["add_bos_token"] as? Bool { kv.append(("tokenizer.ggml.add_bos_token", .bool(addBos))) }
        if let addEos = config["add_eos_token"] as? Bool { kv.append(("tokenizer.ggml.add_eos_token", .bool(addEos))) }
        if let template = config["chat_template"] as? String { kv.append(("tokenizer.chat_template", .string(template))) }
        return kv
    }

    /// The converter's `does_token_look_special`: added tokens that read as control tokens.
    static func looksSpecial(_ token: String) -> Bool {
        if ["<pad>", "<mask>", "<2mass>", "[@BOS@]"].contains(token) { return true }
        if token.hasPrefix("<|") && token.hasSuffix("|>") { return true }
        if token.hasPrefix("<｜") && token.hasSuffix("｜>") { return true }
        return token.hasPrefix("<unused") && token.hasSuffix(">")
    }
}
