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
        The whole text is encoded without BOS/EOS and cut into non-overlapping windows of --ctx \
        tokens from token 0 (the last one shorter). Each window runs alone from position 0 with an \
        empty cache; its first token is not scored. Perplexity = exp(mean -log p), summed in float64.

        --save-base FILE writes the logits of every scored position (64-byte header + rows x vocab \
        f32; docs/COMPARE.md). A later --kl-base FILE run (same text and --ctx) reports KL(base||run), \
        top-1 agreement and the perplexity ratio: the usual way to measure a quantization.
        """)

    @Option(name: .long, help: "Model folder (config.json, safetensors, tokenizer.json).")
    var model: String

    @Option(name: .long, help: "UTF-8 text file to score.")
    var text: String

    @Option(name: .long, help: "Window length in tokens.")
    var ctx: Int = 512

    @Option(name: .long, help: "reference or quantized.")
    var engine: String = "reference"

    @Option(name: .long, help: "Weight type of the quantized engine (q8, q4, …).")
    var quant: String?

    @Option(name: .customLong("kl-base"), help: "Compare against a base file written by --save-base.")
    var klBase: String?

    @Option(name: .customLong("save-base"), help: "Write this run's logits at every scored position to FILE.")
    var saveBase: String?

    @Flag(name: .long, help: "Print the result as JSON.")
    var json = false

    @Option(name: .long, help: "Worker threads of the quantized engine.")
    var threads: Int?

    func run() throws {
        try AnalysisCLI.exitingOnError("perplexity") {
            let spec = try engineSpec()
            let opened = try Model.open(model)
            let textURL = URL(fileURLWithPath: text)
            guard let data = FileManager.default.contents(atPath: textURL.path) else {
                throw UsageError("--text \(text): cannot read the file")
            }
            guard let string = String(data: data, encoding: .utf8) else {
                throw UsageError("--text \(text): not valid UTF-8")
            }
            let tokenizer = try opened.tokenizer()
            let tokens = try tokenizer.encode(string, addSpecialTokens: false).map { Int32($0) }  // no BOS/EOS
            let base = try klBase.map { try LogitsBaseFile(url: URL(fileURLWithPath: $0)) }
            let languageModel = try opened.makeEngine(spec.choice(threads: threads))
            if let base { try base.check(vocab: languageModel.config.vocabSize, ctx: ctx, tokens: tokens) }
            let writer = try saveBase.map {
                try LogitsBaseWriter(url: URL(fileURLWithPath: $0), vocab: languageModel.config.vocabSize, ctx: ctx, tokens: tokens)
            }
            let progress = WindowProgress(total: tokens.count)
            let result = try PerplexityEvaluator.run(model: languageModel, tokens: tokens, ctx: ctx, base: base,
                                                     saveBase: writer, progress: { progress.update(done: $0, of: $1) })
            progress.finish()
            if json {
                let output = Output(model: opened.url.path, text: textURL.path, engine: spec.description, result: result)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                FileHandle.standardOutput.write(try encoder.encode(output) + Data("\n".utf8))
            } else {
                print(Self.render(result, engine: spec.description, model: opened.url.lastPathComponent))
            }
        }
    }

    private func engineSpec() throws -> EngineSpec {
        let base = try EngineSpec(parsing: engine)
        switch (base.kind, quant) {
        case (.reference, .some):
            throw UsageError("--quant applies to --engine quantized only")
        case (.quantized, let .some(q)):
            if let v = base.variant, v != q.lowercased() { throw UsageError("--engine \(engine) and --quant \(q) disagree") }
            return EngineSpec(kind: .quantized, variant: q.lowercased())
        default:
            return base
        }
    }

    /// `dsv2 perplexity --json`.
    struct Output: Codable {
        var schema = "dsv2.perplexity"
        var version = 1
        var model: String
        var text: String
        var engine: String
        var result: PerplexityResult
    }

    static func render(_ r: PerplexityResult, engine: String, model: String) -> String {
        var lines = [
            "model \(model), engine \(engine), ctx \(r.ctx)",
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

/// Tokens done / total on stderr: a redrawn bar on a terminal, a plain line every few seconds otherwise.
private final class WindowProgress {
    let total: Int
    let isTerminal = AnalysisCLI.stderrIsTerminal
    let start = Date()
    var lastLine = Date.distantPast
    var drew = false

    init(total: Int) { self.total = total }

    func update(done: Int, of total: Int) {
        let elapsed = Date().timeIntervalSince(start)
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let rate = elapsed > 0 ? Double(done) / elapsed : 0
        let figures = String(format: "%3.0f%%  %d/%d tokens  %.0f tok/s", fraction * 100, done, total, rate)
        if isTerminal {
            let width = 30, filled = min(width, Int(fraction * Double(width)))
            let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
            FileHandle.standardError.write(Data("\r\u{1B}[K[\(bar)] \(figures)".utf8))
            drew = true
        } else if done == total || Date().timeIntervalSince(lastLine) >= 5 {
            lastLine = Date()
            FileHandle.standardError.write(Data("perplexity: \(figures)\n".utf8))
        }
    }

    func finish() {
        if drew { FileHandle.standardError.write(Data("\n".utf8)) }
    }
}
