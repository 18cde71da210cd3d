import Foundation
import DSV2

/// The fields of a request body, read with OpenAI's rules: a missing key and `null` both mean
/// "not given"; a value of the wrong type or out of range is a 400 naming the field.
struct RequestFields {
    let members: [(String, JSONValue)]

    init(body: [UInt8]) throws {
        let root: JSONValue
        do { root = try JSONValue.parse(Data(body)) } catch { throw APIError.malformedJSON("\(error)") }
        guard let members = root.objectValue else { throw APIError.malformedJSON("the top level is not an object") }
        self.members = members
    }

    func value(_ key: String) -> JSONValue? {
        guard let value = members.first(where: { $0.0 == key })?.1, !value.isNull else { return nil }
        return value
    }

    func bool(_ key: String) throws -> Bool? {
        guard let value = value(key) else { return nil }
        guard let flag = value.boolValue else { throw APIError.invalid(key, "'\(key)' must be a boolean.") }
        return flag
    }

    func string(_ key: String) throws -> String? {
        guard let value = value(key) else { return nil }
        guard let text = value.stringValue else { throw APIError.invalid(key, "'\(key)' must be a string.") }
        return text
    }

    func int(_ key: String, _ range: ClosedRange<Int>) throws -> Int? {
        guard let value = value(key) else { return nil }
        guard let n = value.intValue, range.contains(n) else {
            throw APIError.invalid(key, "'\(key)' must be an integer\(Self.describe(range)).")
        }
        return n
    }

    func number(_ key: String, _ range: ClosedRange<Double>) throws -> Double? {
        guard let value = value(key) else { return nil }
        guard case let .number(d) = value, d.isFinite, range.contains(d) else {
            throw APIError.invalid(key, "'\(key)' must be a number in [\(Self.format(range.lowerBound)), \(Self.format(range.upperBound))].")
        }
        return d
    }

    private static func describe(_ range: ClosedRange<Int>) -> String {
        if range.lowerBound == Int.min { return "" }
        return range.upperBound == Int.max ? " ≥ \(range.lowerBound)" : " in [\(range.lowerBound), \(range.upperBound)]"
    }

    private static func format(_ d: Double) -> String { d.rounded() == d ? String(Int(d)) : String(d) }
}

/// The fields chat and text completions share.
struct CommonFields {
    var model: String?
    var stream = false
    var includeUsage = false
    var maxTokens: Int?
    var stop: [String] = []
    var temperature: Float?
    var topP: Float?
    var topK: Int?
    var minP: Float?
    var repetitionPenalty: Float?
    var seed: UInt64?
    /// Not OpenAI's (llama.cpp's): keep generating past end-of-sequence tokens (benchmarks).
    var ignoreEOS = false

    /// OpenAI accepts up to four stop sequences.
    static let maxStopStrings = 4

    init(_ fields: RequestFields) throws {
        model = try fields.string("model")
        stream = try fields.bool("stream") ?? false
        if let options = fields.value("stream_options") {
            guard stream else { throw APIError.invalid("stream_options", "'stream_options' is only allowed when 'stream' is true.") }
            guard let object = options.objectValue else { throw APIError.invalid("stream_options", "'stream_options' must be an object.") }
            if let usage = object.first(where: { $0.0 == "include_usage" })?.1, !usage.isNull {
                guard let flag = usage.boolValue else {
                    throw APIError.invalid("stream_options.include_usage", "'stream_options.include_usage' must be a boolean.")
                }
                includeUsage = flag
            }
        }
        if let n = try fields.int("n", Int.min...Int.max), n != 1 {
            throw APIError.invalid("n", "'n' must be 1: this server returns one choice per request.")
        }
        if let stopField = fields.value("stop") {
            let strings: [String]
            if let one = stopField.stringValue {
                strings = [one]
            } else if let list = stopField.arrayValue, list.count <= Self.maxStopStrings, list.allSatisfy({ $0.stringValue != nil }) {
                strings = list.map { $0.stringValue! }
            } else {
                throw APIError.invalid("stop", "'stop' must be a string or a list of at most \(Self.maxStopStrings) strings.")
            }
            if strings.contains("") { throw APIError.invalid("stop", "'stop' strings must not be empty.") }
            stop = strings
        }
        temperature = try fields.number("temperature", 0...2).map(Float.init)
        topP = try fields.number("top_p", 0...1).map(Float.init)
        topK = try fields.int("top_k", 0...Int.max)
        minP = try fields.number("min_p", 0...1).map(Float.init)
        repetitionPenalty = try fields.number("repetition_penalty", 0.01...100).map(Float.init)
        if let seed = try fields.int("seed", Int.min...Int.max) { self.seed = UInt64(bitPattern: Int64(seed)) }
        ignoreEOS = try fields.bool("ignore_eos") ?? false
        for key in ["frequency_penalty", "presence_penalty"] {
            if let value = try fields.number(key, -2...2), value != 0 {
                throw APIError.invalid(key, "'\(key)' is not supported by this server (only 0); use 'repetition_penalty'.")
            }
        }
        if fields.value("logit_bias").map({ $0.objectValue?.isEmpty != true }) == true {
            throw APIError.invalid("logit_bias", "'logit_bias' is not supported by this server.")
        }
    }

    /// The sampling options: the model's defaults (generation_config.json) under the fields
    /// given; `seed` or a random one. top_p 0 keeps only the most likely token (greedy).
    func sampling(defaults: SamplingOptions) -> SamplingOptions {
        var options = defaults
        if let temperature { options.temperature = temperature }
        if let topP { if topP == 0 { options.temperature = 0 } else { options.topP = topP } }
        if let topK { options.topK = topK }
        if let minP { options.minP = minP }
        if let repetitionPenalty { options.repetitionPenalty = repetitionPenalty }
        options.seed = seed ?? UInt64.random(in: 0...UInt64.max)
        return options
    }
}

/// `POST /v1/chat/completions`.
struct ChatCompletionRequest {
    var common: CommonFields
    var messages: [ChatMessage]
    var logprobs: Bool
    var topLogprobs: Int?

    static let roles: Set<String> = ["system", "developer", "user", "assistant"]

    init(body: [UInt8]) throws {
        let fields = try RequestFields(body: body)
        common = try CommonFields(fields)
        guard let list = fields.value("messages") else { throw APIError.invalid("messages", "Missing required parameter: 'messages'.") }
        guard let items = list.arrayValue, !items.isEmpty else {
            throw APIError.invalid("messages", "'messages' must be a non-empty list of messages.")
        }
        messages = try items.enumerated().map { i, item in try Self.message(item, index: i) }
        if let maxTokens = try fields.int("max_completion_tokens", 1...Int.max) {
            common.maxTokens = maxTokens
        } else {
            common.maxTokens = try fields.int("max_tokens", 1...Int.max)
        }
        logprobs = try fields.bool("logprobs") ?? false
        topLogprobs = try fields.int("top_logprobs", 0...20)
        if topLogprobs != nil && !logprobs {
            throw APIError.invalid("top_logprobs", "'top_logprobs' needs 'logprobs' set to true.")
        }
        for key in ["tools", "functions"] where fields.value(key).map({ $0.arrayValue?.isEmpty != true }) == true {
            throw APIError.invalid(key, "'\(key)' is not supported by this server.")
        }
        if let format = fields.value("response_format") {
            guard format["type"]?.stringValue == "text" else {
                throw APIError.invalid("response_format", "'response_format' is not supported by this server (only {\"type\": \"text\"}).")
            }
        }
    }

    /// A message: role and content (a string, or a list of text parts, joined).
    private static func message(_ item: JSONValue, index i: Int) throws -> ChatMessage {
        let field = "messages[\(i)]"
        guard item.objectValue != nil else { throw APIError.invalid(field, "'\(field)' must be an object with 'role' and 'content'.") }
        guard let role = item["role"]?.stringValue else { throw APIError.invalid("\(field).role", "'\(field).role' must be a string.") }
        guard roles.contains(role) else {
            throw APIError.invalid("\(field).role", "'\(field).role' must be one of system, developer, user, assistant (got '\(role)').")
        }
        let content: String
        switch item["content"] {
        case nil, .null?:
            guard role == "assistant" else { throw APIError.invalid("\(field).content", "'\(field).content' is required.") }
            content = ""
        case let .string(text)?:
            content = text
        case let .array(parts)?:
            content = try parts.enumerated().map { k, part -> String in
                guard part["type"]?.stringValue == "text", let text = part["text"]?.stringValue else {
                    throw APIError.invalid("\(field).content[\(k)]", "'\(field).content[\(k)]' must be a text part ({\"type\": \"text\", \"text\": …}); other parts are not supported.")
                }
                return text
            }.joined()
        default:
            throw APIError.invalid("\(field).content", "'\(field).content' must be a string or a list of text parts.")
        }
        // The template knows system, user and assistant; a developer message is a system one.
        return ChatMessage(role: role == "developer" ? "system" : role, content: content)
    }
}

/// `POST /v1/completions`.
struct CompletionRequest {
    enum Prompt {
        case text(String)
        case tokens([Int])
    }

    var common: CommonFields
    var prompt: Prompt
    var logprobs: Int?
    var echo: Bool

    /// OpenAI's default for `/v1/completions` when `max_tokens` is not given.
    static let defaultMaxTokens = 16

    init(body: [UInt8], vocabularySize: Int) throws {
        let fields = try RequestFields(body: body)
        common = try CommonFields(fields)
        common.maxTokens = try fields.int("max_tokens", 1...Int.max) ?? Self.defaultMaxTokens
        guard let prompt = fields.value("prompt") else { throw APIError.invalid("prompt", "Missing required parameter: 'prompt'.") }
        self.prompt = try Self.prompt(prompt, vocabularySize: vocabularySize)
        logprobs = try fields.int("logprobs", 0...20)
        echo = try fields.bool("echo") ?? false
        if let suffix = try fields.string("suffix"), !suffix.isEmpty {
            throw APIError.invalid("suffix", "'suffix' is not supported by this server.")
        }
        if let bestOf = try fields.int("best_of", Int.min...Int.max), bestOf != 1 {
            throw APIError.invalid("best_of", "'best_of' must be 1.")
        }
    }

    /// A string, a list of token ids, or a list holding exactly one of those.
    private static func prompt(_ value: JSONValue, vocabularySize: Int) throws -> Prompt {
        if let text = value.stringValue { return .text(text) }
        guard let items = value.arrayValue, !items.isEmpty else {
            throw APIError.invalid("prompt", "'prompt' must be a string, a list of token ids, or a list of one of those.")
        }
        if items.count == 1, items[0].stringValue != nil || items[0].arrayValue != nil {
            if let text = items[0].stringValue { return .text(text) }
            return try prompt(items[0], vocabularySize: vocabularySize)
        }
        guard items.allSatisfy({ $0.intValue != nil }) else {
            throw APIError.invalid("prompt", "'prompt' must be a string or token ids; a list of several prompts is not supported (one choice per request).")
        }
        let ids = items.map { $0.intValue! }
        if let bad = ids.first(where: { $0 < 0 || $0 >= vocabularySize }) {
            throw APIError.invalid("prompt", "'prompt' holds token id \(bad), outside the vocabulary (0..<\(vocabularySize)).")
        }
        return .tokens(ids)
    }
}
