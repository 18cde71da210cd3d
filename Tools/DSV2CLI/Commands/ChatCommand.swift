import ArgumentParser
import Foundation
import DSV2

/// `dsv2 chat`: a multi-turn conversation with the model's chat template, the KV cache kept
/// across turns (each turn feeds only the tokens not already cached).
struct ChatCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "chat",
        abstract: "Chat with a model in the terminal (default: the embedded tiny-dsv2).",
        discussion: """
        Each line you type is a user message; the reply is streamed, then its speed goes to stderr. \
        The conversation is rendered with tokenizer_config.json's chat_template and the KV cache is \
        kept between turns, so a turn only computes its new tokens. Ctrl-C stops the current reply \
        (the conversation goes on); Ctrl-C at the prompt or Ctrl-D (end of input) leaves. With \
        stdin a pipe, every line is a turn and the command ends at the end of input. --json prints \
        one result object per turn instead of the streamed text.
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments

    @Option(name: .long, help: "A system message opening the conversation.")
    var system: String?

    @Flag(name: .long, help: "Print one JSON object per turn (reply, tokens fed and reused, speed) on stdout.")
    var json = false

    func run() throws {
        let model = try GenerationModel.load(modelArguments)
        let generation = try GenerationSession(model: model.engine, tokenizer: model.tokenizer,
                                               contextLength: modelArguments.contextSize)
        let chat = try ChatSession(generation: generation, system: system)
        let seed = sampling.resolvedSeed()
        var sampler = sampling.makeSampler(seed: seed)
        let request = sampling.request(eosTokenIds: model.eosTokenIds)
        let interactive = Terminal.stdinIsTTY

        InterruptMonitor.install()
        if interactive {
            Terminal.writeError("dsv2 chat with \(model.label), seed \(seed). Ctrl-C stops a reply, Ctrl-D leaves.\n")
        }
        var turn = 0
        while true {
            if interactive { Terminal.write("> ") }
            guard let line = readLine(strippingNewline: true) else {
                if interactive { Terminal.write("\n") }
                break
            }
            let message = line.hasSuffix("\r") ? String(line.dropLast()) : line
            if message.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            turn += 1

            let result: GenerationResult
            do {
                result = try replyKeepingContext(chat, message: message, request: request, sampler: &sampler)
            } catch let error as GenerationError {
                Terminal.writeError("error: \(error.description)\n")
                continue
            }
            if json {
                let output = GenerationResultJSON(result: result, turn: turn, model: model.label, seed: seed,
                                                  contextLength: generation.contextLength,
                                                  contextTokens: generation.contextTokens.count)
                Terminal.write(try output.encoded() + "\n")
            } else {
                Terminal.write("\n")
                if result.stopReason == .interrupted { Terminal.writeError("[reply stopped]\n") }
                Terminal.writeError(GenerationReport.summary(result, seed: nil, contextLength: generation.contextLength) + "\n")
            }
        }
    }

    /// One turn; when the conversation no longer fits, it is started over (the system message kept)
    /// and the turn retried once.
    private func replyKeepingContext(_ chat: ChatSession, message: String, request: GenerationRequest,
                                     sampler: inout Sampler) throws -> GenerationResult {
        let stream: (String) -> Void = { piece in if !json { Terminal.write(piece) } }
        do {
            return try InterruptMonitor.whileGenerating {
                try chat.reply(to: message, request: request, sampler: &sampler, onText: stream,
                               shouldStop: { InterruptMonitor.isInterrupted })
            }
        } catch GenerationError.promptTooLong where chat.messages.count > 1 {
            Terminal.writeError("[the conversation no longer fits in the context; starting over]\n")
            chat.reset()
            return try InterruptMonitor.whileGenerating {
                try chat.reply(to: message, request: request, sampler: &sampler, onText: stream,
                               shouldStop: { InterruptMonitor.isInterrupted })
            }
        }
    }
}
