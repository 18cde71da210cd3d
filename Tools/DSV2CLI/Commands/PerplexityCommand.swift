import ArgumentParser
import DSV2
import DSV2Analysis
import Foundation

/// `dsv2 perplexity`: perplexity of a text file under the convention of docs/NUMERICS.md, optionally
/// saving the logits as a base or measuring KL divergence against one.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity",
        abstract: "Perplexity of a text file (and KL divergence against a saved base run).",
        discussion: """
        The whole text is encoded without BOS/EOS and cut into non-overlapping windows of -c \
        tokens from token 0 (the last one shorter). Each window runs alone from position 0 with an \
        empty cache; its first token is not scored. Perplexity = exp(mean -log p), summed in float64.

        --save-base FILE writes the logits of every scored position (64-byte header + rows x vocab \
        f32; docs/COMPARE.md). A later --kl-base FILE run (same text and -c) reports KL(base||run), \
        top-1 agreement and the perplexity ratio: the usual way to measure a quantization.
        """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(name: .long, help: ArgumentHelp("UTF-8 text file to score (\"-\": stdin).", valueName: "path|-"))
    var text: String

    @Option(name: [.customShort("c"), .customLong("ctx-size")], help: "Window length in tokens.")
    var contextSize: Int = 512

    @Option(name: .customLong("kl-base"), help: "Compare against a base file written by --save-base.")
    var klBase: String?

    @Option(name: .customLong("save-base"), help: "Write this run's logits at every scored position to FILE.")
    var saveBase: String?

    @Flag(help: "Overwrite the --save-base file if it exists.")
    var force = false

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    func run() throws {
        let data = try InputFile.read(text, option: "--text")
        guard let string = String(data: data, encoding: .utf8) else { throw UsageError("--text \(text): not valid UTF-8") }
        if let saveBase, !force, FileManager.default.fileExists(atPath: saveBase) {
            throw UsageError("--save-base \(saveBase) exists; add --force to overwrite it")
        }
        let model = try modelArguments.selection.open()
        let tokenizer = try model.tokenizer()
        let tokens = try tokenizer.encode(string, addSpecialTokens: false).map { Int32($0) }  // no BOS/EOS
        let base = try klBase.map { try LogitsBaseFile(url: URL(fileURLWithPath: $0)) }
        let window = min(contextSize, tokens.count)
        // Kept logits: one window's rows.
        let engine = try modelArguments.load(model, contextTokens: window, longestPass: window, logitsRows: window)
        let vocab = engine.config.vocabSize
        if let base { try base.check(vocab: vocab, ctx: contextSize, tokens: tokens) }
        let writer = try saveBase.map { try LogitsBaseWriter(url: URL(fileURLWithPath: $0), vocab: vocab, ctx: contextSize, tokens: tokens) }
        let progress = ProgressReporter(quiet: false)
        let start = Date()
        let result = try PerplexityEvaluator.run(model: engine, tokens: tokens, ctx: contextSize, base: base, saveBase: writer) { done, total in
            let rate = Double(done) / max(Date().timeIntervalSince(start), 1e-9)
            progress.update(fraction: total > 0 ? Double(done) / Double(total) : 1,
                            fields: ["\(done)/\(total) tokens", String(format: "%.0f tok/s", rate)], force: done == total)
        }
        progress.finish()
        let engineName = model.label(modelArguments.choice)
        if json {
            try JSONOutput.print(Output(model: model.url.path, text: text, engine: engineName, result: result), pretty: true)
        } else {
            Terminal.write(Self.render(result, engine: engineName) + "\n")
        }
    }

    /// `dsv2 perplexity --json`.
    struct Output: Encodable {
        var schema = "dsv2.perplexity"
        var version = 1
        var model: String
        var text: String
        var engine: String
        var result: PerplexityResult
    }

    static func render(_ r: PerplexityResult, engine: String) -> String {
        var lines = [
            "\(engine), ctx \(r.ctx)",
            "tokens \(r.tokens), windows \(r.windows), scored \(r.scoredTokens)",
            String(format: "mean -log p %.6f nats/token, perplexity %.4f", r.meanNLL, r.perplexity),
        ]
        if let b = r.base {
            lines.append(String(format: "vs base: KL mean %.6e, max %.6e; top-1 agreement %.2f%%; perplexity ratio %.6f (base %.4f)",
                                b.klMean, b.klMax, b.top1Agreement * 100, b.perplexityRatio, b.basePerplexity))
        }
        return lines.joined(separator: "\n")
    }
}
