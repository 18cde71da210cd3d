import Foundation
import DSV2

/// Turns one job's `GenerationEvent`s into OpenAI's responses: server-sent-event chunks as the
/// events come (`sse(_:)`), or one JSON object at the end (`consume(_:)` then `body()`).
///
/// Chat (`chat.completion`, `chat.completion.chunk`): the reply's first character is a space
/// separating it from the template's `Assistant:`; it is dropped, as `ChatSession` does, so
/// the content sent back in the next turn renders to the tokens already cached.
/// Text (`text_completion`): `echo` puts the prompt before the completion; with `logprobs` the
/// prompt tokens get log-probabilities too (the first one null).
final class CompletionResponder: @unchecked Sendable {   // used by one request's task at a time
    enum Kind { case chat, text }

    let kind: Kind
    let id: String
    let created: Int
    let model: String
    let fingerprint: String
    let includeUsage: Bool
    let tokenizer: Tokenizer
    /// Alternatives per token when log-probabilities were asked for.
    let logprobs: Int?
    let prompt: [Int]
    /// Text completions with `echo`: the prompt's text.
    let echo: String?

    private(set) var text = ""
    private(set) var finish: FinishReport?
    private(set) var failure: String?
    private var atStart = true
    /// Log-probability entries of the whole response (chat: `content`; text: the four lists).
    private var entries: [JSONValue] = []
    private var tokens: [JSONValue] = [], tokenLogprobs: [JSONValue] = [], topLogprobs: [JSONValue] = [], offsets: [JSONValue] = []
    private var textOffset = 0
    private var promptOffset = 0
    private var promptCursor = 0

    init(kind: Kind, model: String, fingerprint: String, includeUsage: Bool, tokenizer: Tokenizer, logprobs: Int?,
         prompt: [Int], echo: String?) {
        self.kind = kind
        id = (kind == .chat ? "chatcmpl-" : "cmpl-") + UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        created = Int(Date().timeIntervalSince1970)
        self.model = model
        self.fingerprint = fingerprint
        self.includeUsage = includeUsage
        self.tokenizer = tokenizer
        self.logprobs = logprobs
        self.prompt = prompt
        self.echo = echo
        if let echo { text = echo; textOffset = echo.unicodeScalars.count }
    }

    // MARK: Streaming

    /// The `data: …` lines for one event (empty when it shows nothing).
    func sse(_ event: GenerationEvent) -> String {
        var out = ""
        func send(_ value: JSONValue) { out += "data: " + value.serialized + "\n\n" }
        switch event {
        case .started:
            switch kind {
            case .chat: send(chunk(delta: .object([("role", .string("assistant")), ("content", .string(""))]), logprobs: .null, finish: nil))
            case .text: if let echo, !echo.isEmpty { send(chunk(text: echo, logprobs: .null, finish: nil)) }
            }
        case let .promptLogprobs(positions):
            if kind == .text, logprobs != nil { send(chunk(text: "", logprobs: promptLogprobs(positions), finish: nil)) }
        case let .token(id, piece, positionLogprobs):
            let shown = visible(piece)
            text += shown
            let logprobsJSON = positionLogprobs.map { tokenLogprobs(id: id, $0) } ?? .null
            if shown.isEmpty && logprobsJSON.isNull { break }
            switch kind {
            case .chat: send(chunk(delta: .object([("content", .string(shown))]), logprobs: logprobsJSON, finish: nil))
            case .text: send(chunk(text: shown, logprobs: logprobsJSON, finish: nil))
            }
        case let .finished(report):
            finish = report
            guard report.reason != .cancelled else { break }
            let tail = visible(report.tail)
            text += tail
            switch kind {
            case .chat:
                if !tail.isEmpty { send(chunk(delta: .object([("content", .string(tail))]), logprobs: .null, finish: nil)) }
                send(chunk(delta: .object([]), logprobs: .null, finish: report.reason.rawValue))
            case .text:
                send(chunk(text: tail, logprobs: .null, finish: report.reason.rawValue))
            }
            if includeUsage { send(usageChunk(report)) }
        case let .failed(message):
            failure = message
            send(APIError.server(message).json)
        }
        return out
    }

    // MARK: One response at the end

    func consume(_ event: GenerationEvent) {
        switch event {
        case .started: break
        case let .promptLogprobs(positions): _ = promptLogprobs(positions)
        case let .token(id, piece, positionLogprobs):
            text += visible(piece)
            if let positionLogprobs { _ = tokenLogprobs(id: id, positionLogprobs) }
        case let .finished(report):
            finish = report
            text += visible(report.tail)
        case let .failed(message):
            failure = message
        }
    }

    /// The whole response (after `finished`).
    func body() -> JSONValue {
        let reason = finish.map { JSONValue.string($0.reason.rawValue) } ?? .null
        let choice: JSONValue
        switch kind {
        case .chat:
            let logprobsJSON: JSONValue = logprobs == nil ? .null : .object([("content", .array(entries)), ("refusal", .null)])
            choice = .object([("index", .number(0)),
                              ("message", .object([("role", .string("assistant")), ("content", .string(text)), ("refusal", .null)])),
                              ("logprobs", logprobsJSON), ("finish_reason", reason)])
        case .text:
            choice = .object([("text", .string(text)), ("index", .number(0)),
                              ("logprobs", logprobs == nil ? .null : textLogprobs(from: 0)), ("finish_reason", reason)])
        }
        return .object(header(object: kind == .chat ? "chat.completion" : "text_completion") + [
            ("choices", .array([choice])),
            ("usage", finish.map(usage) ?? .null),
        ])
    }

    // MARK: Pieces

    /// Chat replies drop the separator space before their first character.
    private func visible(_ piece: String) -> String {
        guard kind == .chat, atStart, !piece.isEmpty else { return piece }
        atStart = false
        return piece.first == " " ? String(piece.dropFirst()) : piece
    }

    private func header(object: String) -> [(String, JSONValue)] {
        [("id", .string(id)), ("object", .string(object)), ("created", .number(Double(created))),
         ("model", .string(model)), ("system_fingerprint", .string(fingerprint))]
    }

    private func chunk(delta: JSONValue, logprobs: JSONValue, finish: String?) -> JSONValue {
        let choice: JSONValue = .object([("index", .number(0)), ("delta", delta), ("logprobs", logprobs),
                                         ("finish_reason", finish.map(JSONValue.string) ?? .null)])
        return .object(header(object: "chat.completion.chunk") + [("choices", .array([choice]))]
                       + (includeUsage ? [("usage", .null)] : []))
    }

    private func chunk(text: String, logprobs: JSONValue, finish: String?) -> JSONValue {
        let choice: JSONValue = .object([("text", .string(text)), ("index", .number(0)), ("logprobs", logprobs),
                                         ("finish_reason", finish.map(JSONValue.string) ?? .null)])
        return .object(header(object: "text_completion") + [("choices", .array([choice]))]
                       + (includeUsage ? [("usage", .null)] : []))
    }

    private func usageChunk(_ report: FinishReport) -> JSONValue {
        .object(header(object: kind == .chat ? "chat.completion.chunk" : "text_completion")
                + [("choices", .array([])), ("usage", usage(report))])
    }

    private func usage(_ report: FinishReport) -> JSONValue {
        .object([("prompt_tokens", .number(Double(report.promptTokens))),
                 ("completion_tokens", .number(Double(report.completionTokens))),
                 ("total_tokens", .number(Double(report.promptTokens + report.completionTokens))),
                 ("prompt_tokens_details", .object([("cached_tokens", .number(Double(report.cachedTokens)))]))])
    }

    private func tokenText(_ id: Int) -> (text: String, bytes: [UInt8]) {
        let bytes = tokenizer.decodeBytes([id])
        return (String(decoding: bytes, as: UTF8.self), bytes)
    }

    /// Records a generated token's log-probabilities; returns the JSON of this token alone
    /// (chat: `{"content": [entry]}`; text: the four lists of one token).
    private func tokenLogprobs(id: Int, _ position: PositionLogprobs) -> JSONValue {
        switch kind {
        case .chat:
            func entry(_ token: TokenLogprob) -> [(String, JSONValue)] {
                let (text, bytes) = tokenText(token.id)
                return [("token", .string(text)), ("logprob", .number(Double(token.logprob))),
                        ("bytes", .array(bytes.map { .number(Double($0)) }))]
            }
            let value: JSONValue = .object(entry(position.chosen) + [("top_logprobs", .array(position.top.map { .object(entry($0)) }))])
            entries.append(value)
            return .object([("content", .array([value])), ("refusal", .null)])
        case .text:
            let start = tokens.count
            appendTextEntry(id: id, position, offset: &textOffset)
            return textLogprobs(from: start)
        }
    }

    /// Prompt tokens' log-probabilities (text completions with echo): the JSON of these tokens.
    private func promptLogprobs(_ positions: [PositionLogprobs?]) -> JSONValue {
        let start = tokens.count
        for position in positions where promptCursor < prompt.count {
            appendTextEntry(id: prompt[promptCursor], position, offset: &promptOffset)
            promptCursor += 1
        }
        return textLogprobs(from: start)
    }

    /// Offsets count Unicode scalars of the tokens' texts: the prompt's from 0, the generated
    /// ones from the end of the echoed prompt (or 0).
    private func appendTextEntry(id: Int, _ position: PositionLogprobs?, offset: inout Int) {
        let text = tokenText(id).text
        tokens.append(.string(text))
        offsets.append(.number(Double(offset)))
        offset += text.unicodeScalars.count
        guard let position else {
            tokenLogprobs.append(.null)
            topLogprobs.append(.null)
            return
        }
        tokenLogprobs.append(.number(Double(position.chosen.logprob)))
        // A dict from token text to log-probability: the first (most likely) of equal texts wins.
        var seen = Set<String>()
        var top: [(String, JSONValue)] = []
        for alternative in position.top {
            let text = tokenText(alternative.id).text
            if seen.insert(text).inserted { top.append((text, .number(Double(alternative.logprob)))) }
        }
        topLogprobs.append(.object(top))
    }

    private func textLogprobs(from start: Int) -> JSONValue {
        .object([("tokens", .array(Array(tokens[start...]))), ("token_logprobs", .array(Array(tokenLogprobs[start...]))),
                 ("top_logprobs", .array(Array(topLogprobs[start...]))), ("text_offset", .array(Array(offsets[start...])))])
    }
}
