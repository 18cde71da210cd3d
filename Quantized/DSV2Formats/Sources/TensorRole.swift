/// What a tensor is, from its Hugging Face name (DeepSeek-V2 `modeling_deepseek.py` names) and
/// shape. The quantization policy decides per role.
public enum TensorRole: String, Sendable, CaseIterable {
    /// `model.embed_tokens.weight` [vocab, hidden]: rows are looked up, never multiplied.
    case embedding
    /// `lm_head.weight` [vocab, hidden] (not tied to the embedding).
    case lmHead
    /// Any 1-D tensor: RMSNorm weights (`input_layernorm`, `kv_a_layernorm`, `model.norm`, ...).
    case norm
    /// `model.layers.N.mlp.gate.weight` [n_routed_experts, hidden]: the MoE router, computed in fp32.
    case router
    /// `model.layers.N.self_attn.*` matrices (q_proj / q_a_proj / q_b_proj, kv_a_proj_with_mqa, kv_b_proj, o_proj).
    case attention
    /// `model.layers.N.mlp.experts.E.{gate,up,down}_proj.weight`.
    case routedExpert
    /// `model.layers.N.mlp.shared_experts.{gate,up,down}_proj.weight`.
    case sharedExpert
    /// `model.layers.N.mlp.{gate,up,down}_proj.weight` of the dense (first_k_dense_replace) layers.
    case denseMLP
    /// Any other matrix.
    case other

    public static func classify(name: String, shape: [Int]) -> TensorRole {
        if shape.count <= 1 { return .norm }
        if name == "model.embed_tokens.weight" { return .embedding }
        if name == "lm_head.weight" { return .lmHead }
        if name.hasSuffix(".mlp.gate.weight") { return .router }
        if name.contains(".mlp.experts.") { return .routedExpert }
        if name.contains(".mlp.shared_experts.") { return .sharedExpert }
        if name.contains(".self_attn.") { return .attention }
        if name.hasSuffix(".mlp.gate_proj.weight") || name.hasSuffix(".mlp.up_proj.weight")
            || name.hasSuffix(".mlp.down_proj.weight") { return .denseMLP }
        return .other
    }
}
