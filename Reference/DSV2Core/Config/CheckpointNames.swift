import Foundation

/// The Hugging Face tensor names of a DeepSeek-V2 checkpoint, verbatim.
///
/// This file is where checkpoint names meet model fields: `ModelWeights.load` below is the one walk
/// over them (both engines load through it), and `ModelConfig.expectedTensorShapes()` records that
/// walk for the loaders' checks, the converter and the synthetic-checkpoint writer.
public enum CheckpointNames {
    public static let embedTokens = "model.embed_tokens.weight"
    public static let finalNorm = "model.norm.weight"
    public static let lmHead = "lm_head.weight"

    /// The names inside decoder layer `layer` (`model.layers.{layer}.…`).
    public struct Layer: Sendable {
        public let layer: Int
        public init(_ layer: Int) { self.layer = layer }
        var prefix: String { "model.layers.\(layer)." }

        public var inputLayernorm: String { prefix + "input_layernorm.weight" }
        public var postAttentionLayernorm: String { prefix + "post_attention_layernorm.weight" }

        // Attention (MLA)
        /// Plain query projection (q_lora_rank null).
        public var qProj: String { prefix + "self_attn.q_proj.weight" }
        /// W^DQ, paper eq. 12 (q_lora_rank set).
        public var qAProj: String { prefix + "self_attn.q_a_proj.weight" }
        public var qALayernorm: String { prefix + "self_attn.q_a_layernorm.weight" }
        /// [W^UQ; W^QR] head by head, paper eqs. 13-14.
        public var qBProj: String { prefix + "self_attn.q_b_proj.weight" }
        /// [W^DKV; W^KR], paper eqs. 9 and 15.
        public var kvAProjWithMQA: String { prefix + "self_attn.kv_a_proj_with_mqa.weight" }
        public var kvALayernorm: String { prefix + "self_attn.kv_a_layernorm.weight" }
        /// [W^UK; W^UV] head by head, paper eqs. 10-11.
        public var kvBProj: String { prefix + "self_attn.kv_b_proj.weight" }
        /// W^O, paper eq. 19.
        public var oProj: String { prefix + "self_attn.o_proj.weight" }

        // Dense MLP (layers < first_k_dense_replace)
        public var mlpGateProj: String { prefix + "mlp.gate_proj.weight" }
        public var mlpUpProj: String { prefix + "mlp.up_proj.weight" }
        public var mlpDownProj: String { prefix + "mlp.down_proj.weight" }

        // MoE
        public var router: String { prefix + "mlp.gate.weight" }
        public func expertGateProj(_ e: Int) -> String { prefix + "mlp.experts.\(e).gate_proj.weight" }
        public func expertUpProj(_ e: Int) -> String { prefix + "mlp.experts.\(e).up_proj.weight" }
        public func expertDownProj(_ e: Int) -> String { prefix + "mlp.experts.\(e).down_proj.weight" }
        public var sharedGateProj: String { prefix + "mlp.shared_experts.gate_proj.weight" }
        public var sharedUpProj: String { prefix + "mlp.shared_experts.up_proj.weight" }
        public var sharedDownProj: String { prefix + "mlp.shared_experts.down_proj.weight" }
    }

    public static func layer(_ layer: Int) -> Layer { Layer(layer) }
}

/// The weights of a model as every engine holds them, generic over how a tensor is stored: the
/// reference uses its fp32 `Matrix` and `[Float]`, the quantized engine `QuantizedMatrix`, `[Float]`
/// and kv_b_proj already split for the absorbed form (hence `KVBProj`, kv_b_proj's own storage).
///
/// Field names follow the checkpoint names (`CheckpointNames`), one table for both engines:
///
/// | checkpoint tensor                                        | field                                      |
/// |----------------------------------------------------------|--------------------------------------------|
/// | model.embed_tokens.weight                                | embedTokens                                |
/// | model.layers.N.input_layernorm.weight                    | layers[N].inputLayernorm                   |
/// | ….self_attn.q_proj.weight (q_lora_rank null)             | ….attention.query = .plain(qProj)          |
/// | ….self_attn.q_a_proj / q_a_layernorm / q_b_proj .weight  | ….attention.query = .lowRank(qAProj, qALayernorm, qBProj) |
/// | ….self_attn.kv_a_proj_with_mqa.weight                    | ….attention.kvAProjWithMQA                 |
/// | ….self_attn.kv_a_layernorm.weight                        | ….attention.kvALayernorm                   |
/// | ….self_attn.kv_b_proj.weight                             | ….attention.kvBProj                        |
/// | ….self_attn.o_proj.weight                                | ….attention.oProj                          |
/// | model.layers.N.post_attention_layernorm.weight           | layers[N].postAttentionLayernorm           |
/// | ….mlp.{gate,up,down}_proj.weight (dense layer)           | ….feedForward = .dense(MLPWeights)         |
/// | ….mlp.gate.weight (MoE layer)                            | ….feedForward = .moe: router               |
/// | ….mlp.experts.E.{gate,up,down}_proj.weight               | ….feedForward = .moe: experts[E]           |
/// | ….mlp.shared_experts.{gate,up,down}_proj.weight          | ….feedForward = .moe: sharedExperts        |
/// | model.norm.weight                                        | finalNorm                                  |
/// | lm_head.weight                                           | lmHead (embedTokens when tie_word_embeddings) |
///
/// `load(config:matrix:vector:kvBProj:)` is the one walk over these tensors; the expected names
/// and shapes (`ModelConfig.expectedTensorShapes()`) are that same walk, recorded.
public struct ModelWeights<Matrix, Vector, KVBProj> {
    public var embedTokens: Matrix  // [vocab, hidden]
    public var layers: [DecoderLayerWeights<Matrix, Vector, KVBProj>]
    public var finalNorm: Vector    // [hidden]
    public var lmHead: Matrix       // [vocab, hidden]

    public init(embedTokens: Matrix, layers: [DecoderLayerWeights<Matrix, Vector, KVBProj>], finalNorm: Vector, lmHead: Matrix) {
        self.embedTokens = embedTokens
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }
}

/// One decoder layer: pre-norm attention and feed-forward blocks.
public struct DecoderLayerWeights<Matrix, Vector, KVBProj> {
    public var inputLayernorm: Vector          // [hidden]
    public var attention: AttentionWeights<Matrix, Vector, KVBProj>
    public var postAttentionLayernorm: Vector  // [hidden]
    public var feedForward: FeedForwardWeights<Matrix>

    public init(inputLayernorm: Vector, attention: AttentionWeights<Matrix, Vector, KVBProj>,
                postAttentionLayernorm: Vector, feedForward: FeedForwardWeights<Matrix>) {
        self.inputLayernorm = inputLayernorm
        self.attention = attention
        self.postAttentionLayernorm = postAttentionLayernorm
        self.feedForward = feedForward
    }
}

/// Multi-head Latent Attention weights (paper section 2.1).
public struct AttentionWeights<Matrix, Vector, KVBProj> {
    public enum Query {
        /// q_lora_rank null (V2-Lite): q = q_proj(x), [heads·qHeadDim, hidden].
        case plain(qProj: Matrix)
        /// q_lora_rank set (V2): q = q_b_proj(q_a_layernorm(q_a_proj(x))), paper eqs. 12-14;
        /// q_a_proj [qLoraRank, hidden], q_b_proj [heads·qHeadDim, qLoraRank].
        case lowRank(qAProj: Matrix, qALayernorm: Vector, qBProj: Matrix)
    }
    public var query: Query
    public var kvAProjWithMQA: Matrix  // [kvLoraRank + qkRopeHeadDim, hidden]: W^DKV and W^KR
    public var kvALayernorm: Vector    // [kvLoraRank]
    public var kvBProj: KVBProj        // [heads·(qkNope + vHead), kvLoraRank]: W^UK and W^UV head by head
    public var oProj: Matrix           // [hidden, heads·vHead]: W^O

    public init(query: Query, kvAProjWithMQA: Matrix, kvALayernorm: Vector, kvBProj: KVBProj, oProj: Matrix) {
        self.query = query
        self.kvAProjWithMQA = kvAProjWithMQA
        self.kvALayernorm = kvALayernorm
        self.kvBProj = kvBProj
        self.oProj = oProj
    }
}

/// down_proj(silu(gate_proj(x)) · up_proj(x)): the dense MLP, each routed expert, the shared experts.
public struct MLPWeights<Matrix> {
    public var gateProj: Matrix  // [intermediate, hidden]
    public var upProj: Matrix    // [intermediate, hidden]
    public var downProj: Matrix  // [hidden, intermediate]

    public init(gateProj: Matrix, upProj: Matrix, downProj: Matrix) {
        self.gateProj = gateProj
        self.upProj = upProj
        self.downProj = downProj
    }
}

/// DeepSeekMoE weights of one layer.
public struct MoEWeights<Matrix> {
    public var router: Matrix                  // [nRoutedExperts, hidden] (mlp.gate.weight)
    public var experts: [MLPWeights<Matrix>]   // nRoutedExperts, moe_intermediate_size wide
    public var sharedExperts: MLPWeights<Matrix>?  // one MLP, moe_intermediate_size × n_shared_experts wide

    public init(router: Matrix, experts: [MLPWeights<Matrix>], sharedExperts: MLPWeights<Matrix>?) {
        self.router = router
        self.experts = experts
        self.sharedExperts = sharedExperts
    }
}

public enum FeedForwardWeights<Matrix> {
    case dense(MLPWeights<Matrix>)
    case moe(MoEWeights<Matrix>)
}

extension ModelWeights: Sendable where Matrix: Sendable, Vector: Sendable, KVBProj: Sendable {}
extension DecoderLayerWeights: Sendable where Matrix: Sendable, Vector: Sendable, KVBProj: Sendable {}
extension AttentionWeights: Sendable where Matrix: Sendable, Vector: Sendable, KVBProj: Sendable {}
extension AttentionWeights.Query: Sendable where Matrix: Sendable, Vector: Sendable {}
extension MLPWeights: Sendable where Matrix: Sendable {}
extension MoEWeights: Sendable where Matrix: Sendable {}
extension FeedForwardWeights: Sendable where Matrix: Sendable {}

extension ModelWeights {
    /// Builds every tensor of `config`, one call per checkpoint tensor with its name and shape
    /// ([out, in] for projections, as PyTorch stores `nn.Linear.weight`), in model order:
    /// embedding; per layer the attention, the feed-forward (MoE: router, experts, shared
    /// experts) and the two norms; the final norm; lm_head unless tie_word_embeddings.
    public static func load(config c: ModelConfig,
                            matrix: (_ name: String, _ shape: [Int]) throws -> Matrix,
                            vector: (_ name: String, _ shape: [Int]) throws -> Vector,
                            kvBProj: (_ name: String, _ shape: [Int]) throws -> KVBProj) rethrows -> ModelWeights {
        let h = c.hiddenSize, heads = c.numAttentionHeads
        let embedTokens = try matrix(CheckpointNames.embedTokens, [c.vocabSize, h])
        var layers: [DecoderLayerWeights<Matrix, Vector, KVBProj>] = []
        layers.reserveCapacity(c.numHiddenLayers)
        for l in 0..<c.numHiddenLayers {
            let n = CheckpointNames.layer(l)
            let query: AttentionWeights<Matrix, Vector, KVBProj>.Query
            if let qLoraRank = c.qLoraRank {
                let qAProj = try matrix(n.qAProj, [qLoraRank, h])
                let qALayernorm = try vector(n.qALayernorm, [qLoraRank])
                let qBProj = try matrix(n.qBProj, [heads * c.qHeadDim, qLoraRank])
                query = .lowRank(qAProj: qAProj, qALayernorm: qALayernorm, qBProj: qBProj)
            } else {
                query = .plain(qProj: try matrix(n.qProj, [heads * c.qHeadDim, h]))
            }
            let kvAProjWithMQA = try matrix(n.kvAProjWithMQA, [c.latentCacheWidth, h])
            let kvALayernorm = try vector(n.kvALayernorm, [c.kvLoraRank])
            let kvB = try kvBProj(n.kvBProj, [c.kvBProjDim, c.kvLoraRank])
            let oProj = try matrix(n.oProj, [h, heads * c.vHeadDim])
            let attention = AttentionWeights(query: query, kvAProjWithMQA: kvAProjWithMQA, kvALayernorm: kvALayernorm,
                                             kvBProj: kvB, oProj: oProj)
            let feedForward: FeedForwardWeights<Matrix>
            if c.isMoELayer(l) {
                let router = try matrix(n.router, [c.routedExpertCount, h])
                var experts: [MLPWeights<Matrix>] = []
                experts.reserveCapacity(c.routedExpertCount)
                for e in 0..<c.routedExpertCount {
                    experts.append(try .load(gateProj: n.expertGateProj(e), upProj: n.expertUpProj(e), downProj: n.expertDownProj(e),
                                             width: c.moeIntermediateSize, hidden: h, matrix: matrix))
                }
                let shared = c.sharedExpertsIntermediateSize > 0
                    ? try MLPWeights.load(gateProj: n.sharedGateProj, upProj: n.sharedUpProj, downProj: n.sharedDownProj,
                                          width: c.sharedExpertsIntermediateSize, hidden: h, matrix: matrix)
                    : nil
                feedForward = .moe(MoEWeights(router: router, experts: experts, sharedExperts: shared))
            } else {
                feedForward = .dense(try .load(gateProj: n.mlpGateProj, upProj: n.mlpUpProj, downProj: n.mlpDownProj,
                                               width: c.intermediateSize, hidden: h, matrix: matrix))
            }
            let inputLayernorm = try vector(n.inputLayernorm, [h])
            let postAttentionLayernorm = try vector(n.postAttentionLayernorm, [h])
            layers.append(DecoderLayerWeights(inputLayernorm: inputLayernorm, attention: attention,
                                              postAttentionLayernorm: postAttentionLayernorm, feedForward: feedForward))
        }
        let finalNorm = try vector(CheckpointNames.finalNorm, [h])
        let lmHead = c.tieWordEmbeddings ? embedTokens : try matrix(CheckpointNames.lmHead, [c.vocabSize, h])
        return ModelWeights(embedTokens: embedTokens, layers: layers, finalNorm: finalNorm, lmHead: lmHead)
    }
}

extension ModelWeights where KVBProj == Matrix {
    /// `load(config:matrix:vector:kvBProj:)` with kv_b_proj stored like every other projection.
    public static func load(config: ModelConfig,
                            matrix: (_ name: String, _ shape: [Int]) throws -> Matrix,
                            vector: (_ name: String, _ shape: [Int]) throws -> Vector) rethrows -> ModelWeights {
        try load(config: config, matrix: matrix, vector: vector, kvBProj: matrix)
    }
}

extension MLPWeights {
    /// gate_proj and up_proj [width, hidden], then down_proj [hidden, width].
    static func load(gateProj: String, upProj: String, downProj: String, width: Int, hidden: Int,
                     matrix: (_ name: String, _ shape: [Int]) throws -> Matrix) rethrows -> MLPWeights {
        let gate = try matrix(gateProj, [width, hidden])
        let up = try matrix(upProj, [width, hidden])
        let down = try matrix(downProj, [hidden, width])
        return MLPWeights(gateProj: gate, upProj: up, downProj: down)
    }
}

/// How a checkpoint's tensor table differs from what its config describes (the first difference
/// found, in model order). Each loader turns it into its own error naming the file and tensor.
public enum TensorTableMismatch: Equatable, Sendable, CustomStringConvertible {
    case missing(tensor: String, expected: [Int])
    case wrongShape(tensor: String, expected: [Int], found: [Int])
    /// A tensor the layer walk does not ask for; `reason` says why it cannot simply be ignored.
    case unexpected(tensor: String, reason: String)

    public var tensor: String {
        switch self {
        case let .missing(tensor, _), let .wrongShape(tensor, _, _), let .unexpected(tensor, _): return tensor
        }
    }

    public var description: String {
        switch self {
        case let .missing(tensor, expected): return "tensor \(tensor) \(expected) is missing (expected by config.json)"
        case let .wrongShape(tensor, expected, found): return "tensor \(tensor) has shape \(found), config.json expects \(expected)"
        case let .unexpected(tensor, reason): return "tensor \(tensor) is not expected by config.json: \(reason)"
        }
    }
}

extension ModelConfig {
    /// Compares a checkpoint's tensors (`names`, with `shape` giving each one's shape) with the
    /// layer walk: every expected tensor present with its shape, and nothing else — the rule of
    /// both engines, every source and the converter.
    ///
    /// What DeepSeek's `modeling_deepseek.py` accepts decides the two special cases:
    /// - `n_shared_experts: 0` builds a shared-experts MLP of width 0, whose output is 0: the
    ///   model has no shared experts, and the only shared-expert tensors it accepts are the empty
    ///   ones it would save ([0, hidden], [0, hidden], [hidden, 0]). Any other is an error
    ///   (its weights would be silently dropped), as with `n_shared_experts` null, where the model
    ///   has no shared-experts module at all.
    /// - `tie_word_embeddings: true` makes `lm_head.weight` the embedding matrix;
    ///   `save_pretrained` writes no separate `lm_head.weight`. One present anyway is an error:
    ///   which matrix transformers then computes with depends on its version.
    public func tensorTableMismatch<Names: Sequence>(names: Names, shape: (String) -> [Int]?) -> TensorTableMismatch?
    where Names.Element == String {
        let expected = expectedTensorShapes()
        for (name, expectedShape) in expected {
            guard let found = shape(name) else { return .missing(tensor: name, expected: expectedShape) }
            guard found == expectedShape else { return .wrongShape(tensor: name, expected: expectedShape, found: found) }
        }
        let known = Set(expected.map(\.name))
        var emptySharedExperts: [String: [Int]] = [:]
        if nSharedExperts == 0 {
            for layer in moeLayers {
                let n = CheckpointNames.layer(layer)
                emptySharedExperts[n.sharedGateProj] = [0, hiddenSize]
                emptySharedExperts[n.sharedUpProj] = [0, hiddenSize]
                emptySharedExperts[n.sharedDownProj] = [hiddenSize, 0]
            }
        }
        for name in names where !known.contains(name) {
            if let empty = emptySharedExperts[name], shape(name) == empty { continue }
            return .unexpected(tensor: name, reason: unexpectedTensorReason(name))
        }
        return nil
    }

    /// Why `name`, which the layer walk does not ask for, is an error.
    private func unexpectedTensorReason(_ name: String) -> String {
        if name == CheckpointNames.lmHead, tieWordEmbeddings {
            return "tie_word_embeddings is true, so the output layer is model.embed_tokens.weight; transformers would either drop this matrix or load it into the shared one depending on its version (remove it, or set tie_word_embeddings to false)"
        }
        if name.contains(".mlp.shared_experts.") {
            if nSharedExperts == 0 {
                return "n_shared_experts is 0, so DeepSeek's code has a shared-experts MLP of width 0 here and accepts only an empty tensor ([0, hidden_size] or [hidden_size, 0])"
            }
            return "the config has no shared experts in this layer (n_shared_experts is \(nSharedExperts.map(String.init) ?? "null"); dense layers have none), so its weights would be ignored"
        }
        return "the config does not match the checkpoint"
    }

    /// Every tensor the checkpoint must hold, by Hugging Face name, with its shape
    /// ([out, in] for projections, as PyTorch stores `nn.Linear.weight`), in model order: the
    /// names and shapes `ModelWeights.load` asks for, in the order it asks.
    public func expectedTensorShapes() -> [(name: String, shape: [Int])] {
        var shapes: [(name: String, shape: [Int])] = []
        func record(_ name: String, _ shape: [Int]) { shapes.append((name, shape)) }
        _ = ModelWeights<Void, Void, Void>.load(config: self, matrix: record, vector: record, kvBProj: record)
        return shapes
    }
}
