import Foundation
import TestSupport
@testable import DSV2Converter

/// Small configs with the two real structures, for synthetic-checkpoint tests (the real shapes
/// are 0.5 GB per V2-Lite layer: far too big for unit tests).
enum SynthTestConfigs {
    /// V2 structure: q_lora set, group_limited_greedy (n_group 4, topk_group 2), scaling 16, YaRN.
    static let v2Style = """
    {
      "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
      "vocab_size": 1000, "hidden_size": 128, "intermediate_size": 256, "moe_intermediate_size": 64,
      "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 4,
      "q_lora_rank": 96, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
      "n_routed_experts": 16, "n_shared_experts": 2, "num_experts_per_tok": 4,
      "topk_method": "group_limited_greedy", "n_group": 4, "topk_group": 2, "routed_scaling_factor": 16.0,
      "norm_topk_prob": false, "first_k_dense_replace": 1, "moe_layer_freq": 1, "scoring_func": "softmax",
      "max_position_embeddings": 163840, "rms_norm_eps": 1e-06, "rope_theta": 10000,
      "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                       "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
      "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "bfloat16"
    }
    """

    /// V2-Lite structure: plain q_proj, greedy top-6 of 16, no scaling.
    static let liteStyle = """
    {
      "architectures": ["DeepseekV2ForCausalLM"], "model_type": "deepseek_v2",
      "vocab_size": 1000, "hidden_size": 128, "intermediate_size": 320, "moe_intermediate_size": 48,
      "num_hidden_layers": 8, "num_attention_heads": 4, "num_key_value_heads": 4,
      "q_lora_rank": null, "kv_lora_rank": 64, "qk_nope_head_dim": 32, "qk_rope_head_dim": 16, "v_head_dim": 32,
      "n_routed_experts": 16, "n_shared_experts": 2, "num_experts_per_tok": 6,
      "topk_method": "greedy", "n_group": 1, "topk_group": 1, "routed_scaling_factor": 1.0,
      "norm_topk_prob": false, "first_k_dense_replace": 1, "moe_layer_freq": 1, "scoring_func": "softmax",
      "max_position_embeddings": 163840, "rms_norm_eps": 1e-06, "rope_theta": 10000,
      "rope_scaling": {"type": "yarn", "factor": 40, "original_max_position_embeddings": 4096,
                       "beta_fast": 32, "beta_slow": 1, "mscale": 0.707, "mscale_all_dim": 0.707},
      "hidden_act": "silu", "tie_word_embeddings": false, "torch_dtype": "bfloat16"
    }
    """

    /// Writes `json` as `config.json` in `folder` and returns its spec.
    static func spec(_ json: String, in folder: TemporaryDirectory, name: String = "config.json",
                     layers: Int? = nil, experts: Int? = nil) throws -> SynthModelSpec {
        let url = folder.file(name)
        try Data(json.utf8).write(to: url)
        return try SynthModelSpec.make(preset: url.path, layers: layers, experts: experts)
    }

    /// All files of a folder, by name.
    static func contents(_ folder: URL) throws -> [String: Data] {
        var out: [String: Data] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: folder.path) {
            out[name] = try Data(contentsOf: folder.appendingPathComponent(name))
        }
        return out
    }
}
