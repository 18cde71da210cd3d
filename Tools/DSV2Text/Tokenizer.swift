import Foundation

/// A Hugging Face byte-level BPE tokenizer (`tokenizer.json` + `tokenizer_config.json`), as
/// DeepSeek ships it. Encoding and decoding equal HF `tokenizers` on every fixture row.
///
/// Pipeline of `encode`: added tokens are cut out first (longest match, before any splitting);
/// the rest goes through the pre-tokenizer steps (each re-splits the previous pieces), then BPE
/// over the UTF-8 bytes of each piece. Thread-safe: the tables are immutable and every call takes
/// its own scratch state (the piece cache is handed between calls under a lock).
public final class Tokenizer: @unchecked Sendable {
    /// Where the tokenizer was loaded from (for messages).
    public let path: String
    /// Where tokenizer_config.json (bos/eos tokens, chat template) was read from, or would have been.
    public let configPath: String
    /// Number of ids: highest id (vocabulary or added token) + 1.
    public let vocabularySize: Int
    /// `added_tokens`, in file order.
    public let addedTokens: [AddedToken]
    /// `bos_token` / `eos_token` of tokenizer_config.json and their ids (nil when absent).
    public let bosToken: String?
    public let eosToken: String?
    public let bosTokenId: Int?
    public let eosTokenId: Int?
    /// `add_bos_token` / `add_eos_token`: what `encode(_:addSpecialTokens: true)` adds.
    public let addBosToken: Bool
    public let addEosToken: Bool
    /// `chat_template` of tokenizer_config.json, parsed (nil when absent).
    public let chatTemplate: ChatTemplate?

    let steps: [PreTokenizerStep]
    /// The JSON path of each step (for errors found while encoding).
    let stepFields: [String]
    /// The same steps without references, and their regexes unretained (kept alive by `steps`),
    /// so the per-piece dispatch does no reference counting.
    private let stepKinds: [StepKind]
    private let stepRegexes: [Unmanaged<ScalarRegex>?]
    let model: BPEModel
    /// Non-normalized added tokens are matched on the raw text, then normalized ones (HF order).
    let rawAddedMatcher: AddedTokenMatcher
    let normalizedAddedMatcher: AddedTokenMatcher
    /// Per id: the bytes the ByteLevel decoder turns it into, its token string, special-ness.
    let decodeBytes: [[UInt8]]
    let tokenStrings: [String?]
    let specialIds: [Bool]
    /// Token string (as UTF-8 bytes) -> id, for `id(forToken:)`.
    let tokenIds: ByteStringTable
    /// `TemplateProcessing` post-processor ids around a single sequence (used only when the
    /// config does not say `add_bos_token`/`add_eos_token`).
    let templatePrefix: [UInt32]
    let templateSuffix: [UInt32]

    private let cacheLock = NSLock()
    private var sharedState: EncodeState?

    // MARK: Loading

    /// Loads `tokenizer.json` (and `tokenizer_config.json` beside it when present) from a folder
    /// or from the path of the tokenizer.json itself.
    public static func load(from url: URL) throws -> Tokenizer {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) else {
            throw TokenizerError.invalidFile(path: url.path, reason: "no such file or folder")
        }
        let jsonURL = isDirectory.boolValue ? url.appendingPathComponent("tokenizer.json") : url
        let configURL = jsonURL.deletingLastPathComponent().appendingPathComponent("tokenizer_config.json")
        let data: Data
        do { data = try Data(contentsOf: jsonURL) } catch {
            throw TokenizerError.invalidFile(path: jsonURL.path, reason: "cannot read: \(error.localizedDescription)")
        }
        let config = FileManager.default.fileExists(atPath: configURL.path) ? try? Data(contentsOf: configURL) : nil
        if FileManager.default.fileExists(atPath: configURL.path) && config == nil {
            throw TokenizerError.invalidFile(path: configURL.path, reason: "cannot read")
        }
        return try Tokenizer(tokenizerJSON: data, configJSON: config, path: jsonURL.path,
                             configPath: configURL.path)
    }

    /// Builds a tokenizer from the bytes of tokenizer.json and (optionally) tokenizer_config.json.
    public init(tokenizerJSON: Data, configJSON: Data?, path: String = "tokenizer.json",
                configPath: String = "tokenizer_config.json") throws {
        self.path = path
        self.configPath = configPath
        let root: JSONValue
        do { root = try JSONValue.parse(tokenizerJSON) } catch TokenizerError.invalidFile(_, let reason) {
            throw TokenizerError.invalidFile(path: path, reason: reason)
        }
        let loaded = try TokenizerLoader(path: path, root: root)
        steps = loaded.steps
        stepFields = loaded.stepFields
        stepKinds = loaded.steps.map { step in
            switch step {
            case let .split(_, behavior, invert): return .split(behavior, invert: invert)
            case let .digits(individual): return .digits(individual: individual)
            case let .byteLevel(addPrefixSpace, regex): return .byteLevel(addPrefixSpace: addPrefixSpace, hasRegex: regex != nil)
            }
        }
        stepRegexes = loaded.steps.map { step in
            switch step {
            case let .split(regex, _, _): return Unmanaged.passUnretained(regex)
            case let .byteLevel(_, regex?): return Unmanaged.passUnretained(regex)
            default: return nil
            }
        }
        model = loaded.model
        addedTokens = loaded.addedTokens
        rawAddedMatcher = AddedTokenMatcher(loaded.addedTokens.filter { !$0.normalized })
        normalizedAddedMatcher = AddedTokenMatcher(loaded.addedTokens.filter { $0.normalized })
        decodeBytes = loaded.decodeBytes
        tokenStrings = loaded.tokenStrings
        specialIds = loaded.specialIds
        tokenIds = loaded.tokenIds
        vocabularySize = loaded.decodeBytes.count
        templatePrefix = loaded.templatePrefix
        templateSuffix = loaded.templateSuffix
        if let id = (templatePrefix + templateSuffix).first(where: { Int($0) >= loaded.decodeBytes.count }) {
            throw TokenizerError.invalidFile(path: path, reason: "post_processor adds token id \(id), outside the vocabulary (0..<\(loaded.decodeBytes.count))")
        }

        var config: JSONValue = .object([])
        if let configJSON {
            do { config = try JSONValue.parse(configJSON) } catch TokenizerError.invalidFile(_, let reason) {
                throw TokenizerError.invalidFile(path: configPath, reason: reason)
            }
        }
        func tokenContent(_ key: String) throws -> String? {
            guard let value = config[key], !value.isNull else { return nil }
            if let s = value.stringValue { return s }
            if let s = value["content"]?.stringValue { return s }
            throw TokenizerError.invalidField(path: configPath, field: key, reason: "expected a string or an AddedToken object")
        }
        bosToken = try tokenContent("bos_token")
        eosToken = try tokenContent("eos_token")
        let ids = tokenIds
        bosTokenId = bosToken.flatMap { ids.lookup(utf8: $0) }
        eosTokenId = eosToken.flatMap { ids.lookup(utf8: $0) }
        if let bosToken, bosTokenId == nil {
            throw TokenizerError.invalidField(path: configPath, field: "bos_token", reason: "`\(bosToken)` is not a token of \(path)")
        }
        if let eosToken, eosTokenId == nil {
            throw TokenizerError.invalidField(path: configPath, field: "eos_token", reason: "`\(eosToken)` is not a token of \(path)")
        }
        func flag(_ key: String) throws -> Bool? {
            guard let value = config[key], !value.isNull else { return nil }
            guard let b = value.boolValue else {
                throw TokenizerError.invalidField(path: configPath, field: key, reason: "expected true or false")
            }
            return b
        }
        // LlamaTokenizerFast (DeepSeek's class) defaults to adding BOS; others rely on the post-processor.
        let isLlama = config["tokenizer_class"]?.stringValue?.hasPrefix("Llama") ?? false
        let configBos = try flag("add_bos_token")
        let configEos = try flag("add_eos_token")
        if configBos != nil || configEos != nil || isLlama {
            addBosToken = configBos ?? isLlama
            addEosToken = configEos ?? false
            usesConfigSpecialTokens = true
        } else {
            addBosToken = false
            addEosToken = false
            usesConfigSpecialTokens = false
        }
        if let addBosToken = Optional(addBosToken), addBosToken, usesConfigSpecialTokens, bosTokenId == nil {
            throw TokenizerError.invalidField(path: configPath, field: "add_bos_token", reason: "true but there is no bos_token")
        }

        if let template = config["chat_template"], !template.isNull {
            var source: String? = template.stringValue
            if source == nil, let list = template.arrayValue {
                // [{"name": "default", "template": ...}, ...]
                source = list.first { $0["name"]?.stringValue == "default" }?["template"]?.stringValue
                    ?? list.first?["template"]?.stringValue
            }
            guard let source else {
                throw TokenizerError.invalidField(path: configPath, field: "chat_template", reason: "expected a string or a list of named templates")
            }
            do { chatTemplate = try ChatTemplate(source) } catch let error as ChatTemplateError {
                throw TokenizerError.chatTemplate(path: configPath, error)
            }
        } else {
            chatTemplate = nil
        }
    }

    /// True when `add_bos_token`/`add_eos_token` decide special tokens (transformers' Llama
    /// tokenizers), false when the tokenizer.json post-processor does.
    let usesConfigSpecialTokens: Bool

    // MARK: Vocabulary

    /// The vocabulary string of an id (byte-level alphabet, e.g. `Ġthe`), or the added token's content.
    public func token(for id: Int) -> String? {
        guard id >= 0, id < tokenStrings.count else { return nil }
        return tokenStrings[id]
    }

    /// The id of a vocabulary string or added token content (compared scalar by scalar).
    public func id(forToken token: String) -> Int? { tokenIds.lookup(utf8: token) }

    /// Whether `id` is a special added token (what `skipSpecialTokens` removes).
    public func isSpecial(_ id: Int) -> Bool { id >= 0 && id < specialIds.count && specialIds[id] }

    // MARK: Encoding

    /// Token ids of `text`. With `addSpecialTokens`, BOS/EOS are added as transformers'
    /// `encode(text)` does (`add_bos_token`/`add_eos_token`, else the post-processor template);
    /// without, the result equals raw `tokenizers` `encode(text, add_special_tokens=False)`.
    /// Throws only if a Split regex of a hostile tokenizer.json runs out of steps (`RegexScratch`).
    public func encode(_ text: String, addSpecialTokens: Bool = false) throws -> [Int] {
        var scalars: [UInt32] = []
        scalars.reserveCapacity(text.utf8.count)
        for s in text.unicodeScalars { scalars.append(s.value) }
        var state = takeState()
        var ids: [UInt32] = []
        ids.reserveCapacity(scalars.count / 3 + 4)
        if addSpecialTokens {
            if usesConfigSpecialTokens { if addBosToken, let bosTokenId { ids.append(UInt32(bosTokenId)) } }
            else { ids.append(contentsOf: templatePrefix) }
        }
        scalars.withUnsafeBufferPointer { buffer in
            guard let base = buffer.baseAddress else { return }
            encodeScalars(base, 0, buffer.count, state: &state, ids: &ids)
        }
        // Checked once here rather than after every piece: the hot recursion stays free of it.
        if let failure = state.regex.failure {
            throw regexError(failure)  // the state is not handed back
        }
        if addSpecialTokens {
            if usesConfigSpecialTokens { if addEosToken, let eosTokenId { ids.append(UInt32(eosTokenId)) } }
            else { ids.append(contentsOf: templateSuffix) }
        }
        putState(state)
        return ids.map { Int($0) }
    }

    private func takeState() -> EncodeState {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let state = sharedState { sharedState = nil; return state }
        return EncodeState()
    }

    private func putState(_ state: EncodeState) {
        cacheLock.lock()
        sharedState = state
        cacheLock.unlock()
    }

    private func encodeScalars(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int,
                               state: inout EncodeState, ids: inout [UInt32]) {
        var raw: [(Int, Int, Int)] = []
        rawAddedMatcher.split(text, lower, upper, into: &raw)
        for (s, e, token) in raw {
            if token >= 0 { ids.append(UInt32(rawAddedMatcher.tokens[token].id)); continue }
            var segments: [(Int, Int, Int)] = []
            normalizedAddedMatcher.split(text, s, e, into: &segments)
            for (s2, e2, t2) in segments {
                if t2 >= 0 { ids.append(UInt32(normalizedAddedMatcher.tokens[t2].id)); continue }
                runSteps(text, s2, e2, step: 0, state: &state, ids: &ids)
            }
        }
    }

    /// Depth-first through the pre-tokenizer steps: each piece of step k is split by step k+1
    /// before the next piece is touched, so only a small stack of ranges is alive.
    private func runSteps(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, step: Int,
                          state: inout EncodeState, ids: inout [UInt32]) {
        guard upper > lower else { return }
        if step == steps.count {
            encodePiece(text, lower, upper, state: &state, ids: &ids)
            return
        }
        let base = state.pieces.count
        switch stepKinds[step] {
        case let .split(behavior, invert):
            state.matches.removeAll(keepingCapacity: true)
            stepRegexes[step]!._withUnsafeGuaranteedRef {
                $0.matches(text, lower, upper, into: &state.matches, scratch: &state.regex)
            }
            if behavior == .isolated && !invert {
                var previous = lower
                for (s, e) in state.matches {
                    if s > previous { state.pieces.append((previous, s)) }
                    if e > s { state.pieces.append((s, e)) }
                    previous = e
                }
                if upper > previous { state.pieces.append((previous, upper)) }
            } else {
                var splits: [(Int, Int, Bool)] = []
                var previous = lower
                for (s, e) in state.matches {
                    if s != previous { splits.append((previous, s, invert)) }
                    splits.append((s, e, !invert))
                    previous = e
                }
                if previous != upper { splits.append((previous, upper, invert)) }
                applySplitBehavior(behavior, splits: splits, into: &state.pieces)
            }
        case let .digits(individual):
            // Every numeric scalar is a match; Isolated (individual) or Contiguous runs.
            var runStart = lower
            if individual {
                for p in lower..<upper where UnicodeTables.isRustNumeric(text[p]) {
                    if p > runStart { state.pieces.append((runStart, p)) }
                    state.pieces.append((p, p + 1))
                    runStart = p + 1
                }
            } else {
                var runIsDigit = UnicodeTables.isRustNumeric(text[lower])
                for p in lower..<upper where UnicodeTables.isRustNumeric(text[p]) != runIsDigit {
                    state.pieces.append((runStart, p))
                    runStart = p
                    runIsDigit.toggle()
                }
            }
            if upper > runStart { state.pieces.append((runStart, upper)) }
        case let .byteLevel(addPrefixSpace, hasRegex):
            let regex = hasRegex ? stepRegexes[step]!.takeUnretainedValue() : nil
            if addPrefixSpace && text[lower] != 0x20 {
                // tokenizers prepends a space to every piece that lacks one, then splits.
                var copy: [UInt32] = [0x20]
                copy.append(contentsOf: UnsafeBufferPointer(start: text + lower, count: upper - lower))
                copy.withUnsafeBufferPointer { buffer in
                    var local: [(Int, Int)] = []
                    if let regex {
                        var found: [(Int, Int)] = []
                        regex.matches(buffer.baseAddress!, 0, buffer.count, into: &found, scratch: &state.regex)
                        isolate(found, 0, buffer.count, into: &local)
                    } else {
                        local = [(0, buffer.count)]
                    }
                    for (s, e) in local { runSteps(buffer.baseAddress!, s, e, step: step + 1, state: &state, ids: &ids) }
                }
                return
            }
            if let regex {
                var found: [(Int, Int)] = []
                regex.matches(text, lower, upper, into: &found, scratch: &state.regex)
                isolate(found, lower, upper, into: &state.pieces)
            } else {
                state.pieces.append((lower, upper))
            }
        }
        let end = state.pieces.count
        var i = base
        while i < end {
            let (s, e) = state.pieces[i]
            runSteps(text, s, e, step: step + 1, state: &state, ids: &ids)
            i += 1
        }
        state.pieces.removeLast(state.pieces.count - base)
    }

    /// The error for a regex that ran out of steps, naming this file and its pre-tokenizer.
    private func regexError(_ failure: RegexFailure) -> TokenizerError {
        let step = steps.firstIndex {
            switch $0 {
            case let .split(regex, _, _), let .byteLevel(_, regex?): return regex === failure.regex
            default: return false
            }
        }
        return .inField(path: path, field: step.map { stepFields[$0] } ?? "pre_tokenizer",
                        .regexTooCostly(pattern: failure.regex.shortPattern, scalars: failure.scalars, steps: failure.steps))
    }

    private func isolate(_ found: [(Int, Int)], _ lower: Int, _ upper: Int, into out: inout [(Int, Int)]) {
        var previous = lower
        for (s, e) in found {
            if s > previous { out.append((previous, s)) }
            if e > s { out.append((s, e)) }
            previous = e
        }
        if upper > previous { out.append((previous, upper)) }
    }

    /// BPE of one final piece, through the cache.
    @inline(__always)
    private func encodePiece(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int,
                             state: inout EncodeState, ids: inout [UInt32]) {
        // UTF-8 of the piece in stack memory (no allocation, no reference counting).
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: (upper - lower) * 4) { buffer in
            var n = 0
            for p in lower..<upper {
                let v = text[p]
                if v < 0x80 {
                    buffer[n] = UInt8(v); n += 1
                } else if v < 0x800 {
                    buffer[n] = UInt8(0xC0 | (v >> 6)); buffer[n + 1] = UInt8(0x80 | (v & 0x3F)); n += 2
                } else if v < 0x10000 {
                    buffer[n] = UInt8(0xE0 | (v >> 12)); buffer[n + 1] = UInt8(0x80 | ((v >> 6) & 0x3F))
                    buffer[n + 2] = UInt8(0x80 | (v & 0x3F)); n += 3
                } else {
                    buffer[n] = UInt8(0xF0 | (v >> 18)); buffer[n + 1] = UInt8(0x80 | ((v >> 12) & 0x3F))
                    buffer[n + 2] = UInt8(0x80 | ((v >> 6) & 0x3F)); buffer[n + 3] = UInt8(0x80 | (v & 0x3F)); n += 4
                }
            }
            let piece = UnsafeBufferPointer(rebasing: buffer[..<n])
            if n <= PieceCache.maxKeyLength {
                let hash = PieceCache.hash(piece)
                if state.cache.lookup(piece, hash: hash, into: &ids) { return }
                let start = ids.count
                model.tokenize(piece, into: &ids, scratch: &state.bpe)
                state.cache.insert(piece, hash: hash, ids: ids[start...])
            } else {
                model.tokenize(piece, into: &ids, scratch: &state.bpe)
            }
        }
    }

    // MARK: Decoding

    /// The text of `ids` as HF `decode` gives it: every token through the ByteLevel decoder,
    /// concatenated, invalid UTF-8 replaced by U+FFFD (maximal subparts). Unknown ids are skipped.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = false) -> String {
        var bytes: [UInt8] = []
        appendBytes(of: ids, skipSpecialTokens: skipSpecialTokens, to: &bytes)
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The raw bytes `ids` decode to (before UTF-8 repair).
    public func decodeBytes(_ ids: [Int], skipSpecialTokens: Bool = false) -> [UInt8] {
        var bytes: [UInt8] = []
        appendBytes(of: ids, skipSpecialTokens: skipSpecialTokens, to: &bytes)
        return bytes
    }

    func appendBytes<C: Collection>(of ids: C, skipSpecialTokens: Bool, to bytes: inout [UInt8]) where C.Element == Int {
        for id in ids where id >= 0 && id < decodeBytes.count && tokenStrings[id] != nil {
            if skipSpecialTokens && specialIds[id] { continue }
            bytes.append(contentsOf: decodeBytes[id])
        }
    }

    /// A streaming detokenizer for generation (HF `DecodeStream` semantics).
    public func streamingDecoder(skipSpecialTokens: Bool = false) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }
}

/// `PreTokenizerStep` without its regex (see `Tokenizer.stepKinds`).
enum StepKind {
    case split(SplitBehavior, invert: Bool)
    case digits(individual: Bool)
    case byteLevel(addPrefixSpace: Bool, hasRegex: Bool)
}

/// Scratch buffers and the piece cache of one encode call.
struct EncodeState {
    var cache = PieceCache()
    var bpe = BPEScratch()
    var regex = RegexScratch()
    var matches: [(Int, Int)] = []
    var pieces: [(Int, Int)] = []
    var bytes: [UInt8] = []
}
