import DSV2Core

/// Hugging Face tensor names (`CheckpointNames`) ↔ llama.cpp's `deepseek2` GGUF names (gguf-py's
/// `TENSOR_NAMES`): `token_embd`, `output_norm`, `output`, and per block `blk.N.attn_norm`,
/// `attn_q` / `attn_q_a` / `attn_q_a_norm` / `attn_q_b`, `attn_kv_a_mqa`, `attn_kv_a_norm`,
/// `attn_kv_b` (or the split `attn_k_b` + `attn_v_b`), `attn_output`, `ffn_norm`, `ffn_gate_inp`
/// (the router), `ffn_{gate,up,down}` (dense), `ffn_{gate,up,down}_exps` (stacked experts; the
/// older per-expert form is `ffn_{gate,up,down}.E`) and `ffn_{gate,up,down}_shexp`.
public enum GGUFNames {
    /// Where the HF tensor lives in a GGUF file.
    public enum Location: Equatable {
        case tensor(String)
        /// A routed expert: its slice of `stacked`, or the per-expert tensor `single`.
        case expert(stacked: String, single: String, expert: Int)
    }

    static let perLayer: [(hf: String, gguf: String)] = [
        ("input_layernorm", "attn_norm"), ("post_attention_layernorm", "ffn_norm"),
        ("self_attn.q_proj", "attn_q"), ("self_attn.q_a_proj", "attn_q_a"), ("self_attn.q_a_layernorm", "attn_q_a_norm"),
        ("self_attn.q_b_proj", "attn_q_b"), ("self_attn.kv_a_proj_with_mqa", "attn_kv_a_mqa"),
        ("self_attn.kv_a_layernorm", "attn_kv_a_norm"), ("self_attn.kv_b_proj", "attn_kv_b"), ("self_attn.o_proj", "attn_output"),
        ("mlp.gate_proj", "ffn_gate"), ("mlp.up_proj", "ffn_up"), ("mlp.down_proj", "ffn_down"), ("mlp.gate", "ffn_gate_inp"),
        ("mlp.shared_experts.gate_proj", "ffn_gate_shexp"), ("mlp.shared_experts.up_proj", "ffn_up_shexp"),
        ("mlp.shared_experts.down_proj", "ffn_down_shexp"),
    ]

    /// The GGUF location of HF tensor `name` (a name of `ModelConfig.expectedTensorShapes`).
    public static func ggufName(forHF name: String) -> Location {
        switch name {
        case CheckpointNames.embedTokens: return .tensor("token_embd.weight")
        case CheckpointNames.finalNorm: return .tensor("output_norm.weight")
        case CheckpointNames.lmHead: return .tensor("output.weight")
        default: break
        }
        let parts = name.split(separator: ".").map(String.init)
        // model.layers.N.<rest>.weight
        guard parts.count >= 5, parts[0] == "model", parts[1] == "layers", let layer = Int(parts[2]) else { return .tensor(name) }
        let rest = parts[3..<(parts.count - 1)].joined(separator: ".")
        if parts[3] == "mlp", parts.count == 8, parts[4] == "experts", let expert = Int(parts[5]) {
            let kind = parts[6].replacingOccurrences(of: "_proj", with: "")   // gate, up, down
            return .expert(stacked: "blk.\(layer).ffn_\(kind)_exps.weight", single: "blk.\(layer).ffn_\(kind).\(expert).weight",
                           expert: expert)
        }
        guard let gguf = perLayer.first(where: { $0.hf == rest })?.gguf else { return .tensor(name) }
        return .tensor("blk.\(layer).\(gguf).weight")
    }

    /// A hint for a GGUF tensor dsv2 does not use.
    static func hint(_ name: String) -> String {
        if name.contains("exp_probs_b") { return "an expert score bias: DeepSeek-V3 routing, not V2" }
        if name.contains("nextn") { return "a multi-token-prediction layer, which dsv2 does not run" }
        if name.hasPrefix("rope_freqs") { return "precomputed RoPE factors; dsv2 computes YaRN from the metadata" }
        return "does the metadata (block_count, expert_count, q_lora_rank, …) match the tensors?"
    }
}
