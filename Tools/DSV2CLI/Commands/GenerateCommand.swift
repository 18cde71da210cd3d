import ArgumentParser
import Foundation
import DSV2

/// `dsv2 generate`: continue a prompt, streaming the text as it is produced.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Continue a prompt with a model (default: the embedded tiny-dsv2).",
        discussion: """
        The prompt is encoded as HF transformers does: BOS first when tokenizer_config.json says \
        add_bos_token (--no-bos leaves it out). Text is streamed to stdout token by token (never half \
        a UTF-8 character); speed and the stop reason go to stderr. Generation stops at EOS, at a \
        --stop string, after -n tokens or when the context is full. --json prints one result object \
        instead. Ctrl-C stops the generation and still prints the statistics (exit status 130).
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments

    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Context length in tokens (default: max_position_embeddings).")
    var contextSize: Int?

    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("The prompt text; \"-\" reads it from stdin.", valueName: "text|-"))
    var prompt: String?

    @Option(name: [.customShort("f"), .long], help: ArgumentHelp("Read the prompt from this file (\"-\": stdin).", valueName: "path|-"))
    var file: String?

    @Flag(name: .customLong("no-bos"), help: "Do not add BOS in front of the prompt.")
    var noBos = false

    @Flag(name: .customLong("no-echo"), help: "Print only the generated text, not the prompt before it.")
    var noEcho = false

    @Flag(name: .long, help: "Print one JSON result object on stdout instead of streaming text.")
    var json = false

    func validate() throws {
        if prompt == nil && file == nil { throw ValidationError("give the prompt with -p/--prompt \"…\", --prompt - (stdin) or -f/--file <path>") }
        if prompt != nil && file != nil { throw ValidationError("give either --prompt or --file, not both") }
        if let contextSize, contextSize < 1 { throw ValidationError("-c/--ctx-size must be at least 1") }
    }

    func run() throws {
        let text = try readPrompt()
        var promptIds: [Int] = []
        let loaded = try GenerationModel.load(modelArguments, contextSize: contextSize) { tokenizer, context in
            // Input errors before the weights are loaded.
            promptIds = try tokenizer.encode(text, addSpecialTokens: !noBos)
            if promptIds.isEmpty { throw GenerationError.emptyPrompt }
            if promptIds.count > context { throw GenerationError.promptTooLong(promptTokens: promptIds.count, contextLength: context) }
            return (promptIds.count + sampling.maxTokens, promptIds.count)
        }
        let session = try GenerationSession(model: loaded.engine, tokenizer: loaded.tokenizer, contextLength: loaded.contextLength,
                                            defaults: loaded.defaults)
        let (options, seed) = sampling.options(over: loaded.defaults.sampling)
        var sampler = Sampler(options: options)

        let result = try Signals.whileGenerating {
            // Echoed inside, so a Ctrl-C right after the prompt appears already stops cleanly.
            if !json && !noEcho { Terminal.write(text) }
            return try session.generate(prompt: promptIds, request: sampling.request(),
                                        sampler: &sampler,
                                        onText: { piece in if !json { Terminal.write(piece) } },
                                        shouldStop: { Signals.isInterrupted })
        }

        if json {
            try JSONOutput.print(GenerationResultJSON(result: result, model: loaded.label, seed: seed,
                                                      contextLength: session.contextLength,
                                                      contextTokens: session.contextTokens.count))
        } else {
            Terminal.write("\n")
            Terminal.writeError(GenerationReport.summary(result, seed: seed, contextLength: session.contextLength) + "\n")
        }
        if result.stopReason == .interrupted { throw ExitCode(ExitStatus.interrupted) }
    }

    /// `--prompt text`, `--prompt -` (stdin) or `--file path`. Text read from stdin or a file loses
    /// one trailing newline (the one an editor or `echo` adds).
    private func readPrompt() throws -> String {
        var text: String
        if let file, file != "-" {
            text = String(decoding: try InputFile.read(file, option: "-f/--file"), as: UTF8.self)
        } else if prompt == "-" || file == "-" {
            text = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
        } else {
            return prompt ?? ""
        }
        if text.hasSuffix("\r\n") { text.removeLast(2) } else if text.hasSuffix("\n") { text.removeLast() }
        return text
    }
}

/// Human-readable statistics lines shared by `generate` and `chat`.
enum GenerationReport {
    static func summary(_ r: GenerationResult, seed: UInt64?, contextLength: Int) -> String {
        var lines: [String] = []
        var prompt = String(format: "prompt: %d tokens in %.3f s (%.1f tokens/s)", r.promptTokens, r.promptSeconds,
                            r.promptTokensPerSecond)
        if r.reusedTokens > 0 { prompt += ", \(r.reusedTokens) reused from the cache" }
        lines.append(prompt)
        var generated = String(format: "generated: %d tokens in %.3f s (%.1f tokens/s), stop: %@", r.generatedTokens,
                               r.generationSeconds, r.generationTokensPerSecond, r.stopReason.rawValue)
        if let seed { generated += ", seed \(seed)" }
        lines.append(generated)
        if r.stopReason == .contextLimit {
            lines.append("stopped: the context is full (\(contextLength) tokens: max_position_embeddings or -c/--ctx-size)")
        }
        return lines.joined(separator: "\n")
    }
}

/// The `--json` object of one generation (one line; `JSONOutput` makes the keys snake_case):
/// `generate` prints one, `chat` one per turn (with `turn`).
struct GenerationResultJSON: Encodable {
    var turn: Int?
    var text: String
    /// Tokens fed to the model by this call (the rest of the prompt came from the cache).
    var promptTokens: Int
    var reusedTokens: Int
    var generatedTokens: Int
    var generatedIds: [Int]
    var stopReason: String
    var promptSeconds: Double
    var generationSeconds: Double
    var promptTokensPerSecond: Double
    var generationTokensPerSecond: Double
    /// The sampler's seed (absent when decoding is greedy: no randomness to reproduce).
    var seed: UInt64?
    var contextLength: Int
    /// Tokens in the KV cache after the call.
    var contextTokens: Int
    var model: String

    init(result r: GenerationResult, turn: Int? = nil, model: String, seed: UInt64?, contextLength: Int, contextTokens: Int) {
        self.turn = turn
        text = r.text
        promptTokens = r.promptTokens
        reusedTokens = r.reusedTokens
        generatedTokens = r.generatedTokens
        generatedIds = r.generatedIds
        stopReason = r.stopReason.rawValue
        promptSeconds = r.promptSeconds
        generationSeconds = r.generationSeconds
        promptTokensPerSecond = r.promptTokensPerSecond
        generationTokensPerSecond = r.generationTokensPerSecond
        self.seed = seed
        self.contextLength = contextLength
        self.contextTokens = contextTokens
        self.model = model
    }
}
