import Foundation
import DSV2Core
import DSV2Text

/// A multi-turn conversation over one `GenerationSession`, rendered with the tokenizer's
/// `chat_template`, keeping the KV cache across turns.
///
/// Each turn renders the whole conversation (with the generation prompt) and encodes it, but only
/// the tokens after the longest prefix already in the cache are fed to the model: normally that
/// is the end of the previous reply (its EOS, if the reply did not end on one) plus the new user
/// message. If the template would change earlier tokens (a template that rewrites history, or a
/// reply whose tokens differ from the canonical encoding of its text), the cache is truncated to
/// the common prefix, so the context is always exactly the rendered conversation.
public final class ChatSession {
    public let generation: GenerationSession
    /// The conversation so far (system, user and assistant messages).
    public private(set) var messages: [ChatMessage] = []

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
    /// (the template puts it back), so the next turn's rendering starts with the cached tokens.
    /// An interrupted or truncated reply is kept as it is.
    public func reply<S: TokenSampler>(to user: String, request: GenerationRequest, sampler: inout S,
                                       onText: (String) -> Void = { _ in },
                                       shouldStop: () -> Bool = { false }) throws -> GenerationResult {
        let conversation = messages + [ChatMessage(role: "user", content: user)]
        let prompt = try tokenizer.encodeChat(conversation, addGenerationPrompt: true)

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
        messages = conversation + [ChatMessage(role: "assistant", content: result.text)]
        return result
    }

    /// Forgets the conversation (keeping the system message) and empties the cache.
    public func reset() {
        messages = messages.filter { $0.role == "system" }
        generation.reset()
    }
}
