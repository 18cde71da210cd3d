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
        kept between turns, so a turn only computes its new tokens.

        In a terminal the line can be edited (arrows, Home/End, Ctrl-A/E/K/U/W) and ↑/↓ recall \
        earlier lines. A line holding only \"\"\" starts a message of several lines, ended by \
        another \"\"\" line. Commands: /help, /reset (forget the conversation), /system TEXT (a new \
        conversation with this system message; /system alone removes it), /exit. Ctrl-C stops the \
        current reply (the conversation goes on); Ctrl-C at the prompt or Ctrl-D (end of input) leaves.

        With stdin a pipe, every line is a turn (the commands and \"\"\" work too) and the command \
        ends at the end of input or at the first error, with its exit status. --json prints one \
        result object per turn instead of the streamed text.
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments

    @Option(name: [.customShort("c"), .customLong("ctx-size")],
            help: "Context length in tokens (default: \(ChatCommand.defaultContext), or max_position_embeddings when smaller).")
    var contextSize: Int?

    /// A conversation's default context: it grows turn by turn, and the memory check counts the
    /// cache at its full size (at V2-Lite's 163840 positions that alone would be ~10 GB).
    static let defaultContext = 4096

    @Option(name: .long, help: "A system message opening the conversation.")
    var system: String?

    @Flag(name: .long, help: "Print one JSON object per turn (reply, tokens fed and reused, speed) on stdout.")
    var json = false

    func validate() throws {
        if let contextSize, contextSize < 1 { throw ValidationError("-c/--ctx-size must be at least 1") }
    }

    static let help = """
        /help           this list
        /reset          forget the conversation (the system message stays)
        /system TEXT    start a new conversation with this system message (/system alone: none)
        /exit           leave (Ctrl-D too)
        \"\"\"             on a line alone: start or end a message of several lines
        """

    func run() throws {
        let loaded = try GenerationModel.load(modelArguments, contextSize: contextSize, defaultContext: Self.defaultContext) { _, context in
            (nil, context)
        }
        let generation = try GenerationSession(model: loaded.engine, tokenizer: loaded.tokenizer, contextLength: loaded.contextLength,
                                               defaults: loaded.defaults)
        let chat = try ChatSession(generation: generation, system: system)
        let (options, seed) = sampling.options(over: loaded.defaults.sampling)
        var sampler = Sampler(options: options)
        let request = sampling.request()
        // The prompt and the edited line go where the replies go, or to stderr when those are redirected.
        let editor = Terminal.stdinIsTTY ? LineEditor(output: Terminal.stdoutIsTTY ? STDOUT_FILENO : STDERR_FILENO) : nil

        if editor != nil {
            let seedNote = seed.map { ", seed \($0)" } ?? ", greedy"
            Terminal.writeError("dsv2 chat with \(loaded.label)\(seedNote). /help lists the commands; Ctrl-C stops a reply, Ctrl-D leaves.\n")
        }
        var turn = 0
        while true {
            guard let message = try nextMessage(editor) else { break }
            if let command = message.command {
                switch command {
                case .help: Terminal.writeError(Self.help + "\n")
                case .reset:
                    chat.reset()
                    Terminal.writeError("[conversation reset]\n")
                case let .system(text):
                    chat.setSystem(text)
                    Terminal.writeError(text.isEmpty ? "[new conversation, no system message]\n" : "[new conversation with this system message]\n")
                case .exit: return
                case let .unknown(name): Terminal.writeError("unknown command \(name); /help lists them (start the line with // to send a /)\n")
                }
                continue
            }
            turn += 1
            let result: GenerationResult
            do {
                result = try replyKeepingContext(chat, message: message.text, request: request, sampler: &sampler)
            } catch let error where editor != nil && !(error is ExitCode) {
                // At the terminal the conversation goes on; a script stops at the first error.
                ExitStatus.report("\(error)", command: "dsv2 chat")
                continue
            }
            if json {
                try JSONOutput.print(GenerationResultJSON(result: result, turn: turn, model: loaded.label, seed: seed,
                                                          contextLength: generation.contextLength,
                                                          contextTokens: generation.contextTokens.count))
            } else {
                Terminal.write("\n")
                if result.stopReason == .interrupted { Terminal.writeError("[reply stopped]\n") }
                Terminal.writeError(GenerationReport.summary(result, seed: nil, contextLength: generation.contextLength) + "\n")
            }
        }
    }

    /// What the user typed: a message or a command; nil at the end of input.
    struct Message {
        enum Command: Equatable { case help, reset, system(String), exit, unknown(String) }
        var text: String
        var command: Command?
    }

    /// Reads the next message: one line, or the lines between two `"""` lines. Ctrl-C at the
    /// prompt leaves with status 130.
    private func nextMessage(_ editor: LineEditor?) throws -> Message? {
        func read(_ prompt: String) throws -> String? {
            guard let editor else {
                guard let line = Swift.readLine(strippingNewline: true) else { return nil }
                return line.hasSuffix("\r") ? String(line.dropLast()) : line
            }
            switch editor.readLine(prompt: prompt) {
            case let .line(line): editor.remember(line); return line
            case .endOfInput: return nil
            case .interrupt: throw ExitCode(ExitStatus.interrupted)
            }
        }
        while true {
            guard let line = try read("> ") else { return nil }
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            if trimmed == "\"\"\"" {
                var lines: [String] = []
                while let next = try read("… "), next.trimmingCharacters(in: .whitespaces) != "\"\"\"" { lines.append(next) }
                let text = lines.joined(separator: "\n")
                if text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { continue }
                return Message(text: text)
            }
            if trimmed.hasPrefix("//") { return Message(text: String(trimmed.dropFirst())) }
            if let command = Self.command(trimmed, interactive: editor != nil) { return Message(text: trimmed, command: command) }
            return Message(text: line)
        }
    }

    /// The command a line names, nil for a message. An unknown `/word` is reported at the
    /// terminal and sent as a message from a pipe (as before the commands existed).
    static func command(_ line: String, interactive: Bool) -> Message.Command? {
        guard line.hasPrefix("/") else { return nil }
        let name = String(line.prefix { !$0.isWhitespace })
        let argument = line.dropFirst(name.count).trimmingCharacters(in: .whitespaces)
        switch name {
        case "/help", "/?": return .help
        case "/reset", "/clear": return .reset
        case "/system": return .system(argument)
        case "/exit", "/quit", "/bye": return .exit
        default:
            let word = name.dropFirst()
            return interactive && !word.isEmpty && word.allSatisfy(\.isLetter) ? .unknown(name) : nil
        }
    }

    /// One turn; when the conversation no longer fits, it is started over (the system message kept)
    /// and the turn retried once.
    private func replyKeepingContext(_ chat: ChatSession, message: String, request: GenerationRequest,
                                     sampler: inout Sampler) throws -> GenerationResult {
        let stream: (String) -> Void = { piece in if !json { Terminal.write(piece) } }
        do {
            return try Signals.whileGenerating {
                try chat.reply(to: message, request: request, sampler: &sampler, onText: stream,
                               shouldStop: { Signals.isInterrupted })
            }
        } catch GenerationError.promptTooLong where chat.messages.count > 1 {
            Terminal.writeError("[the conversation no longer fits in the context; starting over]\n")
            chat.reset()
            return try Signals.whileGenerating {
                try chat.reply(to: message, request: request, sampler: &sampler, onText: stream,
                               shouldStop: { Signals.isInterrupted })
            }
        }
    }
}
