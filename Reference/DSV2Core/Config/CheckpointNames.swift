import Foundation

/// The Hugging Face tensor names of a DeepSeek-V2 checkpoint, verbatim.
///
/// This is the one place where checkpoint names meet model fields: the reference loader, the
/// converter, the synthetic-checkpoint writer and the quantized engine all ask here. Nothing
/// else builds a tensor name (`TensorRole` and the synthesiser only classify names by their parts).
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

extension ModelConfig {
    /// Every tensor the checkpoint must hold, by Hugging Face name, with its shape
    /// ([out, in] for projections, as PyTorch stores `nn.Linear.weight`), in model order.
    public func expectedTensorShapes() -> [(name: String, shape: [Int])] {
        var shapes: [(name: String, shape: [Int])] = []
        let h = hiddenSize, heads = numAttentionHeads
        shapes.append((CheckpointNames.embedTokens, [vocabSize, h]))
        for l in 0..<numHiddenLayers {
            let n = CheckpointNames.layer(l)
            if let qLoraRank {
                shapes.append((n.qAProj, [qLoraRank, h]))
                shapes.append((n.qALayernorm, [qLoraRank]))
                shapes.append((n.qBProj, [heads * qHeadDim, qLoraRank]))
            } else {
                shapes.append((n.qProj, [heads * qHeadDim, h]))
            }
            shapes.append((n.kvAProjWithMQA, [kvAProjDim, h]))
            shapes.append((n.kvALayernorm, [kvLoraRank]))
            shapes.append((n.kvBProj, [kvBProjDim, kvLoraRank]))
            shapes.append((n.oProj, [h, heads * vHeadDim]))
            if isMoELayer(l) {
                shapes.append((n.router, [routedExpertCount, h]))
                for e in 0..<routedExpertCount {
                    shapes.append((n.expertGateProj(e), [moeIntermediateSize, h]))
                    shapes.append((n.expertUpProj(e), [moeIntermediateSize, h]))
                    shapes.append((n.expertDownProj(e), [h, moeIntermediateSize]))
                }
                if sharedExpertsIntermediateSize > 0 {
                    shapes.append((n.sharedGateProj, [sharedExpertsIntermediateSize, h]))
                    shapes.append((n.sharedUpProj, [sharedExpertsIntermediateSize, h]))
                    shapes.append((n.sharedDownProj, [h, sharedExpertsIntermediateSize]))
                }
            } else {
                shapes.append((n.mlpGateProj, [intermediateSize, h]))
                shapes.append((n.mlpUpProj, [intermediateSize, h]))
                shapes.append((n.mlpDownProj, [h, intermediateSize]))
            }
            shapes.append((n.inputLayernorm, [h]))
            shapes.append((n.postAttentionLayernorm, [h]))
        }
        shapes.append((CheckpointNames.finalNorm, [h]))
        if !tieWordEmbeddings { shapes.append((CheckpointNames.lmHead, [vocabSize, h])) }
        return shapes
    }
}
