/// Reads the pipeline of a tokenizer.json. Every component we do not implement is an
/// `unsupportedComponent` error naming its field and type; nothing is silently ignored.
struct TokenizerLoader {
    let path: String
    var steps: [PreTokenizerStep] = []
    /// The JSON path of each step.
    var stepFields: [String] = []
    var model: BPEModel
    var addedTokens: [AddedToken] = []
    var decodeBytes: [[UInt8]] = []
    var tokenStrings: [String?] = []
    var specialIds: [Bool] = []
    var tokenIds = ByteStringTable(capacity: 16)
    var templatePrefix: [UInt32] = []
    var templateSuffix: [UInt32] = []

    init(path: String, root: JSONValue) throws {
        self.path = path
        func field(_ name: String, _ reason: String) -> TokenizerError {
            .invalidField(path: path, field: name, reason: reason)
        }
        func unsupported(_ name: String, _ value: JSONValue?) -> TokenizerError {
            .unsupportedComponent(path: path, field: name, type: value?["type"]?.stringValue ?? value?.serialized ?? "?")
        }
        guard root.objectValue != nil else { throw field("(root)", "expected a JSON object") }

        // MARK: normalizer: only the identity (null or an empty Sequence) is supported.
        func checkNormalizer(_ value: JSONValue?, _ name: String) throws {
            guard let value, !value.isNull else { return }
            if value["type"]?.stringValue == "Sequence", let list = value["normalizers"]?.arrayValue {
                for (i, item) in list.enumerated() { try checkNormalizer(item, "\(name).normalizers[\(i)]") }
                return
            }
            throw unsupported(name, value)
        }
        try checkNormalizer(root["normalizer"], "normalizer")

        // MARK: pre_tokenizer
        var steps: [PreTokenizerStep] = []
        var stepFields: [String] = []
        func regex(_ pattern: String, _ field: String) throws -> ScalarRegex {
            do { return try ScalarRegex(pattern) } catch let error as TokenizerError {
                throw TokenizerError.inField(path: path, field: field, error)
            }
        }
        func addPreTokenizer(_ value: JSONValue?, _ name: String) throws {
            guard let value, !value.isNull else { return }
            switch value["type"]?.stringValue {
            case "Sequence":
                guard let list = value["pretokenizers"]?.arrayValue else { throw field("\(name).pretokenizers", "expected a list") }
                for (i, item) in list.enumerated() { try addPreTokenizer(item, "\(name).pretokenizers[\(i)]") }
            case "Split":
                let pattern: String
                if let regex = value["pattern"]?["Regex"]?.stringValue {
                    pattern = regex
                } else if let literal = value["pattern"]?["String"]?.stringValue {
                    pattern = literal.unicodeScalars.map { "\\x{" + String($0.value, radix: 16) + "}" }.joined()
                } else {
                    throw field("\(name).pattern", "expected {\"Regex\": ...} or {\"String\": ...}")
                }
                guard let behaviorName = value["behavior"]?.stringValue,
                      let behavior = SplitBehavior(rawValue: behaviorName) else {
                    throw unsupported("\(name).behavior", .object([("type", value["behavior"] ?? .null)]))
                }
                let invert = value["invert"]?.boolValue ?? false
                steps.append(.split(try regex(pattern, "\(name).pattern"), behavior, invert: invert))
                stepFields.append(name)
            case "Digits":
                steps.append(.digits(individual: value["individual_digits"]?.boolValue ?? false))
                stepFields.append(name)
            case "ByteLevel":
                let addPrefixSpace = value["add_prefix_space"]?.boolValue ?? true
                let useRegex = value["use_regex"]?.boolValue ?? true
                steps.append(.byteLevel(addPrefixSpace: addPrefixSpace,
                                        regex: useRegex ? try regex(PreTokenizerStep.gpt2Pattern, name) : nil))
                stepFields.append(name)
            default:
                throw unsupported(name, value)
            }
        }
        try addPreTokenizer(root["pre_tokenizer"], "pre_tokenizer")
        // A tokenizer without a ByteLevel step would feed raw text to a byte-level vocabulary.
        guard steps.contains(where: { if case .byteLevel = $0 { return true }; return false }) else {
            throw TokenizerError.unsupportedComponent(path: path, field: "pre_tokenizer", type: "(no ByteLevel step)")
        }
        self.steps = steps
        self.stepFields = stepFields

        // MARK: model
        guard let modelValue = root["model"], modelValue["type"]?.stringValue == "BPE" || (modelValue["type"] == nil && modelValue["merges"] != nil) else {
            throw unsupported("model", root["model"])
        }
        if let dropout = modelValue["dropout"], !dropout.isNull {
            throw TokenizerError.unsupportedComponent(path: path, field: "model.dropout", type: dropout.serialized)
        }
        if modelValue["byte_fallback"]?.boolValue == true {
            throw TokenizerError.unsupportedComponent(path: path, field: "model.byte_fallback", type: "true")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = modelValue[key], !v.isNull, v.stringValue != "" {
                throw TokenizerError.unsupportedComponent(path: path, field: "model.\(key)", type: v.serialized)
            }
        }
        guard let vocab = modelValue["vocab"]?.objectValue else { throw field("model.vocab", "expected an object") }

        var maxId = -1
        var entries: [(String, Int)] = []
        entries.reserveCapacity(vocab.count)
        for (token, idValue) in vocab {
            guard let id = idValue.intValue, id >= 0, id < 10_000_000 else {
                throw field("model.vocab[\(token)]", "expected a non-negative integer id")
            }
            entries.append((token, id))
            maxId = max(maxId, id)
        }
        let addedList = root["added_tokens"]?.arrayValue ?? []
        var added: [AddedToken] = []
        for (i, item) in addedList.enumerated() {
            guard let id = item["id"]?.intValue, id >= 0, id < 10_000_000, let content = item["content"]?.stringValue else {
                throw field("added_tokens[\(i)]", "expected `id` and `content`")
            }
            added.append(AddedToken(id: id, content: content, special: item["special"]?.boolValue ?? false,
                                    normalized: item["normalized"]?.boolValue ?? true,
                                    lstrip: item["lstrip"]?.boolValue ?? false, rstrip: item["rstrip"]?.boolValue ?? false,
                                    singleWord: item["single_word"]?.boolValue ?? false,
                                    scalars: content.unicodeScalars.map { $0.value }))
            maxId = max(maxId, id)
        }
        addedTokens = added

        let count = maxId + 1
        var decodeBytes = [[UInt8]](repeating: [], count: count)
        var tokenStrings = [String?](repeating: nil, count: count)
        var specialIds = [Bool](repeating: false, count: count)
        var tokenIds = ByteStringTable(capacity: count)
        // Vocabulary keyed by the bytes each token stands for (BPE works on bytes).
        var byteVocab = ByteStringTable(capacity: count)
        var wholeTokens: [[UInt8]: UInt32] = [:]
        let ignoreMerges = modelValue["ignore_merges"]?.boolValue == true
        // One id per token and one token per id: HF would silently keep one of two tokens sharing
        // an id for decoding (which one depends on hashing), so a clash is an error here.
        func show(_ token: String) -> String { JSONValue.string(String(token.unicodeScalars.prefix(60))).serialized }
        for (token, id) in entries {
            if let other = tokenStrings[id] {
                throw field("model.vocab", "tokens \(show(other)) and \(show(token)) both have id \(id)")
            }
            if let other = tokenIds.insert(utf8: token, id) {
                throw field("model.vocab", "token \(show(token)) is listed twice (ids \(other) and \(id))")
            }
            let bytes = ByteLevel.bytes(ofToken: token)
            decodeBytes[id] = bytes ?? Array(token.utf8)
            tokenStrings[id] = token
            if let bytes {
                byteVocab.insert(bytes, id)
                if ignoreMerges { wholeTokens[bytes] = UInt32(id) }
            }
        }
        for (i, token) in added.enumerated() {
            // An added token may repeat a vocabulary entry (same id, same string), nothing else.
            if let other = tokenStrings[token.id], !other.unicodeScalars.elementsEqual(token.content.unicodeScalars) {
                throw field("added_tokens[\(i)]", "id \(token.id) is already the token \(show(other)), not \(show(token.content))")
            }
            if let other = tokenIds.lookup(utf8: token.content), other != token.id {
                throw field("added_tokens[\(i)]", "\(show(token.content)) already has id \(other), not \(token.id)")
            }
            // HF decodes added tokens through the ByteLevel decoder too (e.g. `ü` becomes byte 0xFC).
            decodeBytes[token.id] = ByteLevel.bytes(ofToken: token.content) ?? Array(token.content.utf8)
            tokenStrings[token.id] = token.content
            tokenIds.insert(utf8: token.content, token.id)
        }
        // `skip_special_tokens` drops every token whose string is a special token's content.
        let specialContents = Set(added.filter { $0.special }.map { Array($0.content.utf8) })
        for id in 0..<count { if let s = tokenStrings[id], specialContents.contains(Array(s.utf8)) { specialIds[id] = true } }
        self.decodeBytes = decodeBytes
        self.tokenStrings = tokenStrings
        self.specialIds = specialIds
        self.tokenIds = tokenIds

        var byteIds = [Int32](repeating: -1, count: 256)
        for b in 0..<256 { if let id = byteVocab.lookup([UInt8(b)]) { byteIds[b] = Int32(id) } }

        // Merges: legacy "a b" strings or ["a", "b"] pairs; rank = position.
        guard let mergeList = modelValue["merges"]?.arrayValue else { throw field("model.merges", "expected a list") }
        var mergeEntries: [(left: UInt32, right: UInt32, rank: UInt32, merged: UInt32)] = []
        mergeEntries.reserveCapacity(mergeList.count)
        var scratch = [UInt8](repeating: 0, count: 1024)
        for (rank, item) in mergeList.enumerated() {
            let a: Substring, b: Substring
            if let line = item.stringValue {
                let parts = line.split(separator: " ", omittingEmptySubsequences: false)
                guard parts.count == 2 else { throw field("model.merges[\(rank)]", "expected \"left right\"") }
                a = parts[0]; b = parts[1]
            } else if let pair = item.arrayValue, pair.count == 2, let l = pair[0].stringValue, let r = pair[1].stringValue {
                a = Substring(l); b = Substring(r)
            } else {
                throw field("model.merges[\(rank)]", "expected \"left right\" or [\"left\", \"right\"]")
            }
            // Bytes of a then b in one buffer: a, b and a+b are three slices of it.
            var n = 0
            var valid = true
            var split = 0
            for (part, text) in [a, b].enumerated() {
                if part == 1 { split = n }
                for scalar in text.unicodeScalars {
                    let v = Int(scalar.value)
                    guard v < ByteLevel.scalarToByte.count, ByteLevel.scalarToByte[v] >= 0, n < scratch.count else { valid = false; break }
                    scratch[n] = UInt8(ByteLevel.scalarToByte[v]); n += 1
                }
            }
            let ids: (Int, Int, Int)? = valid ? scratch.withUnsafeBufferPointer { buffer in
                guard let l = byteVocab.lookup(UnsafeBufferPointer(rebasing: buffer[0..<split])),
                      let r = byteVocab.lookup(UnsafeBufferPointer(rebasing: buffer[split..<n])),
                      let m = byteVocab.lookup(UnsafeBufferPointer(rebasing: buffer[0..<n])) else { return nil }
                return (l, r, m)
            } : nil
            guard let (left, right, merged) = ids else {
                throw field("model.merges[\(rank)]", "`\(a) \(b)` uses a token that is not in the vocabulary")
            }
            mergeEntries.append((UInt32(left), UInt32(right), UInt32(rank), UInt32(merged)))
        }
        var unkId: UInt32? = nil
        if let unk = modelValue["unk_token"]?.stringValue {
            guard let id = tokenIds.lookup(utf8: unk) else { throw field("model.unk_token", "`\(unk)` is not in the vocabulary") }
            unkId = UInt32(id)
        }
        model = BPEModel(byteIds: byteIds, merges: MergeTable(mergeEntries), wholeTokens: ignoreMerges ? wholeTokens : nil,
                         unkId: unkId, fuseUnk: modelValue["fuse_unk"]?.boolValue ?? false)

        // MARK: post_processor: ByteLevel only trims offsets; TemplateProcessing adds special tokens.
        if let post = root["post_processor"], !post.isNull {
            try readPostProcessor(post, "post_processor", unsupported: unsupported, field: field)
        }

        // MARK: decoder: ByteLevel (optionally inside a Sequence).
        func checkDecoder(_ value: JSONValue?, _ name: String) throws -> Bool {
            guard let value, !value.isNull else { return false }
            switch value["type"]?.stringValue {
            case "ByteLevel": return true
            case "Sequence":
                guard let list = value["decoders"]?.arrayValue else { throw field("\(name).decoders", "expected a list") }
                var found = false
                for (i, item) in list.enumerated() { found = try checkDecoder(item, "\(name).decoders[\(i)]") || found }
                return found
            default: throw unsupported(name, value)
            }
        }
        guard try checkDecoder(root["decoder"], "decoder") else {
            throw TokenizerError.unsupportedComponent(path: path, field: "decoder", type: root["decoder"]?.serialized ?? "null")
        }
    }

    private mutating func readPostProcessor(_ post: JSONValue, _ name: String,
                                            unsupported: (String, JSONValue?) -> TokenizerError,
                                            field: (String, String) -> TokenizerError) throws {
        switch post["type"]?.stringValue {
        case "ByteLevel": return
        case "Sequence":
            for (i, item) in (post["processors"]?.arrayValue ?? []).enumerated() {
                try readPostProcessor(item, "\(name).processors[\(i)]", unsupported: unsupported, field: field)
            }
        case "TemplateProcessing":
            guard let single = post["single"]?.arrayValue else { throw field("\(name).single", "expected a list") }
            var seenSequence = false
            for (i, piece) in single.enumerated() {
                if piece["Sequence"] != nil { seenSequence = true; continue }
                guard let tokenName = piece["SpecialToken"]?["id"]?.stringValue,
                      let ids = post["special_tokens"]?[tokenName]?["ids"]?.arrayValue else {
                    throw field("\(name).single[\(i)]", "expected a Sequence or a SpecialToken listed in special_tokens")
                }
                let values = try ids.enumerated().map { j, id -> UInt32 in
                    guard let value = id.intValue, let exact = UInt32(exactly: value) else {
                        throw field("\(name).special_tokens.\(tokenName).ids[\(j)]", "expected a token id, not \(id.serialized)")
                    }
                    return exact
                }
                if seenSequence { templateSuffix += values } else { templatePrefix += values }
            }
        default:
            throw unsupported(name, post)
        }
    }
}
