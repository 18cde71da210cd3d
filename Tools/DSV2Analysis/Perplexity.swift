import Foundation
import DSV2Core

/// Sum of −log p in float64 over scored tokens.
public struct PerplexityAccumulator: Equatable, Sendable {
    public private(set) var sumNLL = 0.0
    public private(set) var count = 0

    public init() {}

    public mutating func add(_ negativeLogLikelihood: Double) {
        sumNLL += negativeLogLikelihood
        count += 1
    }

    /// Mean −log p in nats (NaN before anything was added).
    public var meanNLL: Double { count > 0 ? sumNLL / Double(count) : .nan }
    public var perplexity: Double { exp(meanNLL) }
}

/// The windows of docs/NUMERICS.md "Perplexity convention": non-overlapping `ctx`-token windows from
/// token 0, the last one shorter; each is run alone from position 0, its first token unscored.
public enum PerplexityWindows {
    public static func ranges(tokenCount: Int, ctx: Int) -> [Range<Int>] {
        precondition(ctx > 0)
        return stride(from: 0, to: tokenCount, by: ctx).map { $0 ..< min($0 + ctx, tokenCount) }
    }

    /// Scored tokens: every token but the first of each window.
    public static func scoredCount(tokenCount: Int, ctx: Int) -> Int {
        ranges(tokenCount: tokenCount, ctx: ctx).reduce(0) { $0 + $1.count - 1 }
    }
}

/// What a perplexity run measured. Its JSON is `dsv2 perplexity --json` (docs/COMPARE.md).
public struct PerplexityResult: Codable, Equatable {
    public var tokens: Int
    public var scoredTokens: Int
    public var windows: Int
    public var ctx: Int
    /// Mean −log p (nats per scored token), float64.
    public var meanNLL: Double
    public var perplexity: Double
    public var base: BaseComparison?

    /// Agreement with a `--kl-base` file; KL is KL(base ‖ this run) per scored position.
    public struct BaseComparison: Codable, Equatable {
        public var file: String
        public var klMean: Double
        public var klMax: Double
        /// Fraction of scored positions with the same argmax.
        public var top1Agreement: Double
        public var baseMeanNLL: Double
        public var basePerplexity: Double
        /// perplexity / basePerplexity.
        public var perplexityRatio: Double
    }
}

public enum PerplexityError: Error, CustomStringConvertible, Equatable {
    case badContext(ctx: Int, maxPositions: Int)
    case nothingToScore(tokens: Int, ctx: Int)

    public var description: String {
        switch self {
        case let .badContext(ctx, maxPositions):
            return "-c/--ctx-size \(ctx) is outside 2 ... \(maxPositions) (max_position_embeddings)"
        case let .nothingToScore(tokens, ctx):
            return "the text encodes to \(tokens) token(s): with -c/--ctx-size \(ctx) no token is scored (need at least 2 in a window)"
        }
    }
}

/// Runs the perplexity convention on any `LanguageModel`, optionally saving every scored row to
/// a base file or comparing against one.
public enum PerplexityEvaluator {
    /// `progress(doneTokens, totalTokens)` is called after each window.
    public static func run(model: LanguageModel, tokens: [Int32], ctx: Int,
                           base: LogitsBaseFile? = nil, saveBase: LogitsBaseWriter? = nil,
                           progress: ((Int, Int) -> Void)? = nil) throws -> PerplexityResult {
        let vocab = model.config.vocabSize
        guard ctx >= 2, ctx <= model.config.maxPositionEmbeddings else {
            throw PerplexityError.badContext(ctx: ctx, maxPositions: model.config.maxPositionEmbeddings)
        }
        let windows = PerplexityWindows.ranges(tokenCount: tokens.count, ctx: ctx)
        let scored = PerplexityWindows.scoredCount(tokenCount: tokens.count, ctx: ctx)
        guard scored > 0 else { throw PerplexityError.nothingToScore(tokens: tokens.count, ctx: ctx) }
        try base?.check(vocab: vocab, ctx: ctx, tokens: tokens)

        var accumulator = PerplexityAccumulator(), baseAccumulator = PerplexityAccumulator()
        var klSum = 0.0, klMax = 0.0, top1 = 0, row = 0
        for window in windows {
            let ids = Array(tokens[window])
            guard ids.count >= 2 else { continue }  // a 1-token last window scores nothing
            model.resetCache()
            let logits = try model.forward(tokens: ids, logits: .all, tracer: nil)  // [n, vocab]
            model.resetCache()
            try logits.withUnsafeBufferPointer { all in
                for i in 0 ..< ids.count - 1 {
                    let current = UnsafeBufferPointer(rebasing: all[i * vocab ..< (i + 1) * vocab])
                    let target = Int(ids[i + 1])
                    accumulator.add(LogSoftmax.negativeLogLikelihood(current, target: target))
                    try saveBase?.append(row: current)
                    if let base {
                        let reference = try base.row(row)
                        baseAccumulator.add(LogSoftmax.negativeLogLikelihood(reference, target: target))
                        let kl = LogSoftmax.klDivergence(LogSoftmax.row(reference), LogSoftmax.row(current))
                        klSum += kl
                        klMax = kl.isNaN || klMax.isNaN ? .nan : max(klMax, kl)
                        if LogSoftmax.argmax(reference) == LogSoftmax.argmax(current) { top1 += 1 }
                    }
                    row += 1
                }
            }
            progress?(window.upperBound, tokens.count)
        }
        try saveBase?.finish(meanNLL: accumulator.meanNLL)

        var result = PerplexityResult(tokens: tokens.count, scoredTokens: accumulator.count, windows: windows.count,
                                      ctx: ctx, meanNLL: accumulator.meanNLL, perplexity: accumulator.perplexity, base: nil)
        if let base {
            let n = Double(row)
            result.base = .init(file: base.url.path, klMean: klSum / n, klMax: klMax, top1Agreement: Double(top1) / n,
                                baseMeanNLL: baseAccumulator.meanNLL, basePerplexity: baseAccumulator.perplexity,
                                perplexityRatio: accumulator.perplexity / baseAccumulator.perplexity)
        }
        return result
    }
}
