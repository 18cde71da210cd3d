import Foundation

/// One chat message (`{"role": ..., "content": ...}` plus any extra string fields).
public struct ChatMessage: Equatable {
    public var role: String
    public var content: String
    /// Extra fields the template may read (e.g. `name`).
    public var extra: [String: String]

    public init(role: String, content: String, extra: [String: String] = [:]) {
        self.role = role
        self.content = content
        self.extra = extra
    }
}

/// Errors of template parsing and rendering; each names the construct or the message, and
/// (`located`) the template line of the tag.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    case syntax(String)
    case unsupported(String)
    /// `raise_exception(message)` was called by the template.
    case raised(String)
    case runtime(String)
    /// `error` in the tag that starts on template line `line` (from 1).
    indirect case located(line: Int, ChatTemplateError)

    public var description: String { "chat template " + detail }

    private var detail: String {
        switch self {
        case let .syntax(s): return "syntax error: \(s)"
        case let .unsupported(s): return "uses an unsupported construct: \(s)"
        case let .raised(s): return "raised: \(s)"
        case let .runtime(s): return "error: \(s)"
        case let .located(line, error): return "line \(line): \(error.detail)"
        }
    }

    /// The error without its line.
    public var withoutLine: ChatTemplateError {
        if case let .located(_, error) = self { return error.withoutLine }
        return self
    }
}

/// A Jinja2 chat template rendered exactly as transformers' `apply_chat_template` does
/// (sandboxed jinja2 with `trim_blocks`, `lstrip_blocks`, no trailing newline kept, loop controls).
///
/// Implements the subset chat templates use: `if/elif/else`, `for` (with `loop.*`, `else`, filter
/// condition, tuple targets), `set` (incl. `namespace` attributes), `break`/`continue`,
/// `generation` blocks; expressions with literals, `+ - * / // % ~`, comparisons, `in`,
/// `and/or/not`, conditional expressions, subscripts and slices, attributes, common filters,
/// tests and string methods, `raise_exception`, `namespace`, `range`. Anything else is an
/// `unsupported` error naming the construct.
public struct ChatTemplate {
    public let source: String
    let body: [JinjaNode]

    public init(_ source: String) throws {
        self.source = source
        let tokens = try JinjaLexer.tokenize(source)
        var parser = JinjaTemplateParser(tokens: tokens)
        body = try parser.parseBody(until: [])
    }

    /// Renders the conversation. `bosToken`/`eosToken` fill `bos_token`/`eos_token`.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool,
                       bosToken: String?, eosToken: String?) throws -> String {
        let list: [JinjaValue] = messages.map { m in
            var members: [(String, JinjaValue)] = [("role", .string(m.role)), ("content", .string(m.content))]
            for (k, v) in m.extra.sorted(by: { $0.key < $1.key }) { members.append((k, .string(v))) }
            return .dict(members)
        }
        var variables: [String: JinjaValue] = [
            "messages": .list(list),
            "add_generation_prompt": .bool(addGenerationPrompt),
        ]
        if let bosToken { variables["bos_token"] = .string(bosToken) }
        if let eosToken { variables["eos_token"] = .string(eosToken) }
        return try render(variables: variables)
    }

    /// Renders with arbitrary top-level variables (JSON values become Jinja values).
    public func render(context: [String: JSONValue]) throws -> String {
        try render(variables: context.mapValues(JinjaValue.init(json:)))
    }

    func render(variables: [String: JinjaValue]) throws -> String {
        try renderCounting(variables: variables).text
    }

    /// The text and the budget left (tests check how little of it real templates use).
    func renderCounting(variables: [String: JinjaValue]) throws -> (text: String, budget: JinjaBudget) {
        let inputBytes = variables.values.reduce(0) { $0 + $1.inputBytes }
        var interpreter = JinjaInterpreter(globals: variables, inputBytes: inputBytes)
        try interpreter.run(body)
        return (interpreter.output, interpreter.budget)
    }
}

extension Tokenizer {
    /// Renders `chat_template` for `messages` and encodes the text without adding BOS (the BOS
    /// comes from the template text, as `apply_chat_template(tokenize=True)`).
    public func encodeChat(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> [Int] {
        try encode(try renderChat(messages, addGenerationPrompt: addGenerationPrompt), addSpecialTokens: false)
    }

    /// The rendered chat template text; its errors name tokenizer_config.json and the template line.
    public func renderChat(_ messages: [ChatMessage], addGenerationPrompt: Bool) throws -> String {
        guard let chatTemplate else {
            throw TokenizerError.invalidField(path: configPath, field: "chat_template", reason: "tokenizer_config.json has no chat_template")
        }
        do {
            return try chatTemplate.render(messages: messages, addGenerationPrompt: addGenerationPrompt,
                                           bosToken: bosToken, eosToken: eosToken)
        } catch let error as ChatTemplateError {
            throw TokenizerError.chatTemplate(path: configPath, error)
        }
    }
}
