import Foundation
import DSV2Core
import DSV2Text

/// A multi-turn conversation over one `GenerationSession`, rendered with the tokenizer's
/// `chat_template`, keeping the KV cache across turns.
///
/// The cache holds the conversation as the model saw it: each prompt, then the reply's own
/// tokens. A later turn feeds only what the template adds after the reply (its end of turn, e.g.
/// EOS, and the next user message with the generation prompt), encoded and appended to those
/// tokens, so the whole previous turn is reused whatever the reply's first character — even when
/// re-encoding the rendered reply would give other tokens (a reply starting with a newline, which
/// the template writes after a space). When the template rewrites earlier turns (the new
/// rendering does not extend the old one), the conversation is rendered and encoded whole and
/// the cache is cut to the common prefix.
public final class ChatSession {
    public let generation: GenerationSession
    /// The conversation so far (system, user and assistant messages).
    public private(set) var messages: [ChatMessage] = []
    /// The conversation through the last reply: the template's text and the tokens the model saw
    /// for it (nil when it could not be worked out: the next turn re-encodes everything).
    private var history: (text: String, tokens: [Int])?

    public var tokenizer: Tokenizer { generation.tokenizer }

    /// - Parameter system: an optional system message opening the conversation.
    public init(generation: GenerationSession, system: String? = nil) throws {
        guard generation.tokenizer.chatTemplate != nil else {
            throw TokenizerError.invalidField(path: generation.tokenizer.path, field: "chat_template",
                                              reason: "tokenizer_config.json has no chat_template; chat needs one")
        }
        self.generation = generation
        if let system, !system.isEmpty { messages.append(ChatMessage(role: "system", content: system)) }
    }

    /// Adds a user message, generates the assistant reply (streamed through `onText`) and records
    /// it in the conversation. The reply's text has the separator space after `Assistant:` removed
    /// (the template puts it back). An interrupted or truncated reply is kept as it is.
    public func reply<S: TokenSampler>(to user: String, request: GenerationRequest, sampler: inout S,
                                       onText: (String) -> Void = { _ in },
                                       shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        let conversation = messages + [ChatMessage(role: "user", content: user)]
        let prompt = try promptTokens(for: conversation)

        // The template ends the generation prompt without the space that separates the reply
        // (`Assistant:` then `Assistant: ` + content), so the first token usually starts with a
        // space: drop it from the shown text and the stored content.
        var atStart = true
        let show: (String) -> Void = { piece in
            var piece = Substring(piece)
            if atStart, !piece.isEmpty {
                if piece.first == " " { piece = piece.dropFirst() }
                atStart = false
            }
            if !piece.isEmpty { onText(String(piece)) }
        }
        var result = try generation.generate(prompt: prompt, request: request, sampler: &sampler,
                                             onText: show, shouldStop: shouldStop)
        if result.text.first == " " { result.text.removeFirst() }
        let reply = ChatMessage(role: "assistant", content: result.text)
        history = try? historyAfter(conversation, reply: reply, prompt: prompt, generated: result.generatedIds,
                                    eosTokenIds: request.eosTokenIds ?? generation.defaults.eosTokenIds)
        messages = conversation + [reply]
        return result
    }

    /// Forgets the conversation (keeping the system message) and empties the cache.
    public func reset() {
        messages = messages.filter { $0.role == "system" }
        history = nil
        generation.reset()
    }

    /// Replaces the system message (a new conversation: the cache is emptied).
    public func setSystem(_ system: String?) {
        messages = []
        if let system, !system.isEmpty { messages.append(ChatMessage(role: "system", content: system)) }
        history = nil
        generation.reset()
    }

    /// The tokens of `conversation` rendered with the generation prompt: the tokens of the history
    /// plus the encoded text the template adds after it, or the whole rendering encoded.
    private func promptTokens(for conversation: [ChatMessage]) throws -> [Int] {
        let full = try tokenizer.renderChat(conversation, addGenerationPrompt: true)
        if let history, let rest = Self.suffix(of: full, after: history.text) {
            return history.tokens + (try tokenizer.encode(rest))
        }
        return try tokenizer.encode(full)
    }

    /// The conversation through `reply` as text and as the tokens the model saw: the prompt, the
    /// generated ids, and the template's end of turn after the reply's content (an EOS the model
    /// generated itself is not added twice). Nil when the template does not write the content
    /// verbatim between the prompt and an end of turn.
    private func historyAfter(_ conversation: [ChatMessage], reply: ChatMessage, prompt: [Int], generated: [Int],
                              eosTokenIds: Set<Int>) throws -> (text: String, tokens: [Int])? {
        let marker = "\u{F8FF}dsv2-reply\u{F8FF}"
        let marked = try tokenizer.renderChat(conversation + [ChatMessage(role: "assistant", content: marker)],
                                              addGenerationPrompt: false)
        guard let range = marked.range(of: marker) else { return nil }
        let closing = String(marked[range.upperBound...])
        let text = try tokenizer.renderChat(conversation + [reply], addGenerationPrompt: false)
        guard text == String(marked[..<range.lowerBound]) + reply.content + closing else { return nil }
        var closingTokens = try tokenizer.encode(closing)
        if let last = generated.last, eosTokenIds.contains(last), closingTokens.first == last { closingTokens.removeFirst() }
        return (text, prompt + generated + closingTokens)
    }

    /// `text` without its prefix `prefix` (compared scalar by scalar), nil when it does not start so.
    static func suffix(of text: String, after prefix: String) -> String? {
        let scalars = text.unicodeScalars, head = prefix.unicodeScalars
        guard scalars.starts(with: head) else { return nil }
        return String(String.UnicodeScalarView(scalars.dropFirst(head.count)))
    }
}
