import Foundation
import DSV2Core

/// The fp32 reference engine: DeepSeek-V2 exactly as DeepSeek's `modeling_deepseek.py` computes
/// it (docs/NUMERICS.md), in plain Swift with BLAS for the matrix products. Deterministic; the oracle
/// the quantized engine is judged against.
///
/// Per layer (pre-norm, residual adds):
///   a = x + MLA(input_layernorm(x))            → trace `attn.l`
///   y = a + FFN(post_attention_layernorm(a))   → trace `moe.l` (FFN output), `hidden.{l+1}`
/// with FFN the dense MLP for layers < first_k_dense_replace and DeepSeekMoE otherwise.
public final class ReferenceModel: LanguageModel {
    public let config: ModelConfig
    public let weights: ReferenceWeights
    /// The MLA form used; changing it empties the cache (the two forms cache different things).
    public var attentionForm: AttentionForm {
        didSet { if attentionForm != oldValue { resetCache() } }
    }
    private let rotary: RotaryEmbedding
    private let attentions: [MultiHeadLatentAttention]
    private let caches: [LayerKVCache]
    public private(set) var cachedTokens = 0

    public init(config: ModelConfig, weights: ReferenceWeights, attentionForm: AttentionForm = .expanded) {
        self.config = config
        self.weights = weights
        self.attentionForm = attentionForm
        rotary = RotaryEmbedding(config: config)
        attentions = weights.layers.map { MultiHeadLatentAttention(config: config, weights: $0.attention) }
        caches = weights.layers.map { _ in LayerKVCache() }
    }

    /// Loads `config.json` and the safetensors weights (single file or sharded) of a Hugging Face
    /// checkpoint folder. Errors name the file, tensor or config field at fault.
    /// `weightStorage` `.mapped` keeps the projections in the mapped checkpoint (see `WeightStorage`).
    public convenience init(checkpoint folder: URL, attentionForm: AttentionForm = .expanded,
                            weightStorage: WeightStorage = .fp32) throws {
        let config = try ModelConfig.load(from: folder)
        let checkpoint = try SafetensorsCheckpoint(url: folder)
        let weights = try ReferenceWeights(checkpoint: checkpoint, config: config, storage: weightStorage)
        self.init(config: config, weights: weights, attentionForm: attentionForm)
    }

    public func resetCache() {
        caches.forEach { $0.removeAll() }
        cachedTokens = 0
    }

    public func truncateCache(to count: Int) throws {
        try checkCacheTruncation(to: count)
        caches.forEach { $0.truncate(to: count) }
        cachedTokens = count
    }

    public func forward(tokens: [Int32], logits rows: LogitsRows, tracer: ForwardTracer?) throws -> [Float] {
        let count = tokens.count, hidden = config.hiddenSize
        try checkForwardInput(tokens)
        func trace(_ name: @autoclosure () -> String, _ shape: [Int], _ values: @autoclosure () -> [Float]) {
            guard let tracer else { return }
            let name = name()
            if tracer.wants(name) { tracer.record(name, TracedTensor(shape: shape, floats: values())) }
        }

        let rope = rotary.table(start: cachedTokens, count: count)
        var x = [Float](repeating: 0, count: count * hidden)  // [tokens, hidden]: the residual stream
        for (t, token) in tokens.enumerated() {
            weights.embedTokens.withRows(Int(token) ..< Int(token) + 1) { row in
                for i in 0..<hidden { x[t * hidden + i] = row[i] }
            }
        }
        trace(TraceName.hidden(0), [count, hidden], x)

        for (l, layer) in weights.layers.enumerated() {
            let attentionInput = rmsNorm(x, rows: count, width: hidden, weight: layer.inputLayernorm, eps: config.rmsNormEps)
            let attention = attentions[l].forward(attentionInput, tokens: count, layer: l, rope: rope, cache: caches[l],
                                                  form: attentionForm, tracer: tracer)
            addInPlace(&x, attention)
            trace(TraceName.attn(l), [count, hidden], x)

            let ffnInput = rmsNorm(x, rows: count, width: hidden, weight: layer.postAttentionLayernorm, eps: config.rmsNormEps)
            let ffnOutput: [Float]
            switch layer.feedForward {
            case let .dense(mlp):
                ffnOutput = mlp.forward(ffnInput, tokens: count)
            case let .moe(moeWeights):
                let moe = MixtureOfExperts(config: config, weights: moeWeights)
                let routing = moe.route(ffnInput, tokens: count)
                if let tracer {
                    let shape = [count, routing.topK]
                    if tracer.wants(TraceName.routerIndices(l)) {
                        tracer.record(TraceName.routerIndices(l), TracedTensor(shape: shape, int32s: routing.indices))
                    }
                    trace(TraceName.routerWeights(l), shape, routing.weights)
                }
                ffnOutput = moe.forward(ffnInput, tokens: count, routing: routing)
            }
            trace(TraceName.moe(l), [count, hidden], ffnOutput)
            addInPlace(&x, ffnOutput)
            trace(TraceName.hidden(l + 1), [count, hidden], x)
        }
        cachedTokens += count

        let normed = rmsNorm(x, rows: count, width: hidden, weight: weights.finalNorm, eps: config.rmsNormEps)
        trace(TraceName.finalNorm, [count, hidden], normed)
        let logits: [Float]
        switch rows {
        case .all:
            logits = weights.lmHead.apply(normed, tokens: count)  // [tokens, vocab]
        case .last:
            logits = weights.lmHead.apply(Array(normed[(count - 1) * hidden ..< count * hidden]), tokens: 1)  // [1, vocab]
        case .none:
            logits = []
        }
        trace(TraceName.logits, [logits.count / config.vocabSize, config.vocabSize], logits)
        return logits
    }
}
