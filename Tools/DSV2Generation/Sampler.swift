import Foundation
import DSV2Core
import DSV2Text

/// How the next token is chosen from the logits (flags follow common LLM tools).
public struct SamplingOptions: Equatable, Sendable {
    /// 0 = greedy (argmax); otherwise logits are divided by it before the softmax.
    public var temperature: Float
    /// Keep only the `topK` highest logits (ties with the k-th are kept, like HF); 0 = off.
    public var topK: Int
    /// Nucleus: keep the smallest set of most likely tokens whose probability reaches `topP`; 1 = off.
    public var topP: Float
    /// Drop tokens whose probability is below `minP` x the top probability; 0 = off.
    public var minP: Float
    /// HF repetition penalty over the ids seen so far (prompt + output): positive logits are
    /// divided by it, negative ones multiplied; 1 = off.
    public var repetitionPenalty: Float
    /// Seed of the sampler's own RNG: the same seed gives the same tokens on every machine.
    public var seed: UInt64

    public init(temperature: Float = 0, topK: Int = 0, topP: Float = 1, minP: Float = 0,
                repetitionPenalty: Float = 1, seed: UInt64 = 0) {
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.seed = seed
    }

    public static let greedy = SamplingOptions()
}

/// xoshiro256** seeded by splitmix64: a small, fast RNG whose output depends only on the seed
/// (Swift's SystemRandomNumberGenerator is neither seedable nor reproducible).
public struct SeededGenerator: RandomNumberGenerator, Sendable {
    private var s0: UInt64, s1: UInt64, s2: UInt64, s3: UInt64

    public init(seed: UInt64) {
        var seeder = SplitMix64(seed: seed)
        s0 = seeder.next(); s1 = seeder.next(); s2 = seeder.next(); s3 = seeder.next()
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = s3 << 45 | s3 >> 19
        return result
    }
}

/// Picks tokens from logits: repetition penalty, then temperature, top-k, top-p, min-p (the
/// order of HF `generate`'s processors and warpers), then a draw from the renormalized
/// distribution with the seeded RNG. Arithmetic is in Double over ids in a fixed order, so the
/// same logits and seed give the same token everywhere.
public struct Sampler {
    public let options: SamplingOptions
    private var generator: SeededGenerator

    public init(options: SamplingOptions) {
        self.options = options
        generator = SeededGenerator(seed: options.seed)
    }

    /// The next token id. `previousTokens` feeds the repetition penalty (prompt and output so far).
    public mutating func sample(logits: [Float], previousTokens: [Int] = []) -> Int {
        logits.withUnsafeBufferPointer { sample(logits: $0, previousTokens: previousTokens) }
    }

    public mutating func sample(logits: UnsafeBufferPointer<Float>, previousTokens: [Int] = []) -> Int {
        guard !logits.isEmpty else { return 0 }
        let penalized = Sampler.penalized(logits, penalty: options.repetitionPenalty, seen: previousTokens)
        if options.temperature <= 0 { return Sampler.argmax(penalized) }
        let candidates = Sampler.candidates(penalized, options: options)
        let u = generator.nextUnitDouble()
        var cumulative = 0.0
        for c in candidates {
            cumulative += c.probability
            if u < cumulative { return c.id }
        }
        return candidates.last?.id ?? Sampler.argmax(penalized)
    }

    /// First index of the largest value (NaN never wins), like `torch.argmax`.
    public static func argmax(_ values: [Float]) -> Int {
        var best = 0
        var bestValue = -Float.infinity
        var found = false
        for (i, v) in values.enumerated() where !v.isNaN && (!found || v > bestValue) {
            best = i; bestValue = v; found = true
        }
        return best
    }

    /// HF `RepetitionPenaltyLogitsProcessor`: each distinct seen id once.
    public static func penalized(_ logits: UnsafeBufferPointer<Float>, penalty: Float, seen: [Int]) -> [Float] {
        var out = Array(logits)
        guard penalty != 1 else { return out }
        for id in Set(seen) where id >= 0 && id < out.count {
            out[id] = out[id] < 0 ? out[id] * penalty : out[id] / penalty
        }
        return out
    }

    /// The tokens that survive the warpers with their renormalized probabilities, in id order.
    public static func candidates(_ logits: [Float], options: SamplingOptions) -> [(id: Int, probability: Double)] {
        let temperature = Double(max(options.temperature, 1e-6))
        var ids = [Int](logits.indices).filter { !logits[$0].isNaN && logits[$0] > -Float.infinity }
        if ids.isEmpty { return [(argmax(logits), 1)] }
        var scaled = [Double](repeating: -Double.infinity, count: logits.count)
        for i in ids { scaled[i] = Double(logits[i]) / temperature }

        // top-k: remove scores below the k-th largest.
        if options.topK > 0 && options.topK < ids.count {
            let kth = ids.map { scaled[$0] }.sorted(by: >)[options.topK - 1]
            ids = ids.filter { scaled[$0] >= kth }
        }
        // top-p: ascending order, drop while the cumulative probability stays <= 1 - topP
        // (the most likely token always stays).
        if options.topP < 1 {
            let probabilities = softmax(ids.map { scaled[$0] })
            let removable = 1 - Double(options.topP)
            // Exact shortcut for large vocabularies: tokens with p <= removable / n come first in
            // ascending order and together weigh <= removable, so they are always dropped; only
            // their mass is needed. The rest is sorted.
            let threshold = removable / Double(ids.count)
            var cumulative = 0.0
            var rest: [Int] = []
            for k in ids.indices {
                if probabilities[k] <= threshold { cumulative += probabilities[k] } else { rest.append(k) }
            }
            if rest.isEmpty { rest = [probabilities.indices.max { probabilities[$0] < probabilities[$1] }!] ; cumulative = 0 }
            let order = rest.sorted { probabilities[$0] != probabilities[$1] ? probabilities[$0] < probabilities[$1] : ids[$0] > ids[$1] }
            var kept = Set(order.map { ids[$0] })
            for (position, k) in order.enumerated() where position < order.count - 1 {
                cumulative += probabilities[k]
                if cumulative <= removable { kept.remove(ids[k]) } else { break }
            }
            ids = ids.filter { kept.contains($0) }
        }
        // min-p: drop tokens below minP x the top probability.
        if options.minP > 0 {
            let probabilities = softmax(ids.map { scaled[$0] })
            let top = probabilities.max() ?? 0
            let kept = ids.indices.filter { probabilities[$0] >= Double(options.minP) * top }
            ids = kept.isEmpty ? [ids[probabilities.firstIndex(of: top) ?? 0]] : kept.map { ids[$0] }
        }
        let probabilities = softmax(ids.map { scaled[$0] })
        return zip(ids, probabilities).map { ($0, $1) }
    }

    static func softmax(_ values: [Double]) -> [Double] {
        guard let maximum = values.max() else { return [] }
        let e = values.map { exp($0 - maximum) }
        let sum = e.reduce(0, +)
        return e.map { $0 / sum }
    }
}
