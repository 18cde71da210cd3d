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
        instead. Ctrl-C stops the generation and still prints the statistics.
        """)

    @OptionGroup var modelArguments: ModelArguments
    @OptionGroup var sampling: SamplingArguments

    @Option(name: .long, help: ArgumentHelp("The prompt text; \"-\" reads it from stdin.", valueName: "text|-"))
    var prompt: String?

    @Option(name: .long, help: "Read the prompt from this file.")
    var file: String?

    @Flag(name: .customLong("no-bos"), help: "Do not add BOS in front of the prompt.")
    var noBos = false

    @Flag(name: .customLong("no-echo"), help: "Print only the generated text, not the prompt before it.")
    var noEcho = false

    @Flag(name: .long, help: "Print one JSON result object on stdout instead of streaming text.")
    var json = false

    func validate() throws {
        if prompt == nil && file == nil { throw ValidationError("give the prompt with --prompt \"…\", --prompt - (stdin) or --file <path>") }
        if prompt != nil && file != nil { throw ValidationError("give either --prompt or --file, not both") }
    }

    func run() throws {
        let text = try readPrompt()
        let model = try GenerationModel.load(modelArguments)
        let session = try GenerationSession(model: model.engine, tokenizer: model.tokenizer,
                                            contextLength: modelArguments.contextSize)
        let promptIds = try model.tokenizer.encode(text, addSpecialTokens: !noBos)
        let seed = sampling.resolvedSeed()
        var sampler = sampling.makeSampler(seed: seed)

        // Input errors before anything is printed.
        if promptIds.isEmpty { throw GenerationError.emptyPrompt }
        if promptIds.count > session.contextLength {
            throw GenerationError.promptTooLong(promptTokens: promptIds.count, contextLength: session.contextLength)
        }
        InterruptMonitor.install()
        let result = try InterruptMonitor.whileGenerating {
            // Echoed inside, so a Ctrl-C right after the prompt appears already stops cleanly.
            if !json && !noEcho { Terminal.write(text) }
            return try session.generate(prompt: promptIds, request: sampling.request(eosTokenIds: model.eosTokenIds),
                                 sampler: &sampler,
                                 onText: { piece in if !json { Terminal.write(piece) } },
                                 shouldStop: { InterruptMonitor.isInterrupted })
        }

        if json {
            let output = GenerationResultJSON(result: result, model: model.label, seed: seed, contextLength: session.contextLength,
                                              contextTokens: session.contextTokens.count)
            Terminal.write(try output.encoded() + "\n")
        } else {
            Terminal.write("\n")
            Terminal.writeError(GenerationReport.summary(result, seed: seed, contextLength: session.contextLength) + "\n")
        }
    }

    /// `--prompt text`, `--prompt -` (stdin) or `--file path`. Text read from stdin or a file loses
    /// one trailing newline (the one an editor or `echo` adds).
    private func readPrompt() throws -> String {
        var text: String
        if let file {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw ValidationError("cannot read the prompt file \(file)")
            }
            text = String(decoding: data, as: UTF8.self)
        } else if prompt == "-" {
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
            lines.append("stopped: the context is full (\(contextLength) tokens: max_position_embeddings or --ctx-size)")
        }
        return lines.joined(separator: "\n")
    }
}

/// The `--json` object of one generation (one line, snake_case keys): `generate` prints one,
/// `chat` one per turn (with `turn`).
struct GenerationResultJSON: Encodable {
    var turn: Int?
    var text: String
    /// Tokens fed to the model by this call (the rest of the prompt came from the cache).
    var prompt_tokens: Int
    var reused_tokens: Int
    var generated_tokens: Int
    var generated_ids: [Int]
    var stop_reason: String
    var prompt_seconds: Double
    var generation_seconds: Double
    var prompt_tokens_per_second: Double
    var generation_tokens_per_second: Double
    /// The sampler's seed (absent when decoding is greedy: no randomness to reproduce).
    var seed: UInt64?
    var context_length: Int
    /// Tokens in the KV cache after the call.
    var context_tokens: Int
    var model: String

    init(result r: GenerationResult, turn: Int? = nil, model: String, seed: UInt64?, contextLength: Int, contextTokens: Int) {
        self.turn = turn
        text = r.text
        prompt_tokens = r.promptTokens
        reused_tokens = r.reusedTokens
        generated_tokens = r.generatedTokens
        generated_ids = r.generatedIds
        stop_reason = r.stopReason.rawValue
        prompt_seconds = r.promptSeconds
        generation_seconds = r.generationSeconds
        prompt_tokens_per_second = r.promptTokensPerSecond
        generation_tokens_per_second = r.generationTokensPerSecond
        self.seed = seed
        context_length = contextLength
        context_tokens = contextTokens
        self.model = model
    }

    func encoded() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}
