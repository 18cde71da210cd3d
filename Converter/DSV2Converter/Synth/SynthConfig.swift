import Foundation
import DSV2Core
import DSV2Formats
import DSV2Container

/// The model a synthetic checkpoint has: a real preset (DeepSeek-V2, DeepSeek-V2-Lite) or any
/// `config.json`, optionally cut to fewer layers or routed experts with the real per-layer shapes.
public struct SynthModelSpec: Sendable {
    /// The `config.json` written next to the weights (and embedded in a container).
    public let configJSON: Data
    /// `configJSON` decoded and validated.
    public let config: ModelConfig
    /// A short human name for provenance ("v2-lite", "v2", or the config file's folder name).
    public let name: String

    /// The preset names `make` accepts besides a path to a `config.json`.
    public static let presetNames = ["v2-lite", "v2"]

    /// `preset` is "v2-lite", "v2" or a path to a `config.json` (or to a folder holding one).
    /// `layers` replaces `num_hidden_layers`, `experts` replaces `n_routed_experts`; the result
    /// is validated (e.g. `n_group` must still divide the expert count) and errors name the field.
    public static func make(preset: String, layers: Int? = nil, experts: Int? = nil) throws -> SynthModelSpec {
        if let layers, layers < 1 { throw ModelConfigError(field: "num_hidden_layers", message: "--layers must be at least 1, got \(layers)") }
        if let experts, experts < 1 { throw ModelConfigError(field: "n_routed_experts", message: "--experts must be at least 1, got \(experts)") }
        let json: Data
        let name: String
        switch preset.lowercased() {
        case "v2-lite", "v2lite", "lite":
            json = RealConfigs.json(lite: true, layers: layers, experts: experts)
            name = "v2-lite"
        case "v2":
            json = RealConfigs.json(lite: false, layers: layers, experts: experts)
            name = "v2"
        default:
            var url = URL(fileURLWithPath: preset)
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory), isDirectory.boolValue {
                url.appendPathComponent("config.json")
            }
            guard FileManager.default.fileExists(atPath: url.path) else {
                throw ModelConfigError(file: url.path, field: nil,
                                       message: "is neither a preset (\(presetNames.joined(separator: ", "))) nor an existing config.json")
            }
            let original: Data
            do { original = try Data(contentsOf: url) } catch {
                throw ModelConfigError(file: url.path, field: nil, message: "cannot be read (\(error.localizedDescription))")
            }
            _ = try ModelConfig.decode(original, file: url.path)   // report its own errors first
            json = try overriding(original, file: url.path, layers: layers, experts: experts)
            name = url.deletingLastPathComponent().lastPathComponent
        }
        let config = try ModelConfig.decode(json, file: "synthetic config.json (\(name))")
        return SynthModelSpec(configJSON: json, config: config, name: name)
    }

    /// A user config with `num_hidden_layers` / `n_routed_experts` replaced (unchanged bytes when
    /// there is nothing to replace).
    static func overriding(_ data: Data, file: String, layers: Int?, experts: Int?) throws -> Data {
        guard layers != nil || experts != nil else { return data }
        guard var object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw ModelConfigError(file: file, field: nil, message: "is not a JSON object")
        }
        if let layers { object["num_hidden_layers"] = layers }
        if let experts { object["n_routed_experts"] = experts }
        var out = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        out.append(0x0A)
        return out
    }
}

/// The two real configurations (docs/NUMERICS.md, "Real configurations"), written key for key like the
/// `config.json` files DeepSeek ships (sorted keys, two-space indent, Python number spelling).
enum RealConfigs {
    static func json(lite: Bool, layers: Int?, experts: Int?) -> Data {
        let routed = experts ?? (lite ? 64 : 160)
        let heads = lite ? 16 : 128
        let fields: [(String, String)] = [
            ("architectures", "[\n    \"DeepseekV2ForCausalLM\"\n  ]"),
            ("attention_bias", "false"),
            ("attention_dropout", "0.0"),
            ("auto_map", """
            {
                "AutoConfig": "configuration_deepseek.DeepseekV2Config",
                "AutoModel": "modeling_deepseek.DeepseekV2Model",
                "AutoModelForCausalLM": "modeling_deepseek.DeepseekV2ForCausalLM"
              }
            """),
            ("aux_loss_alpha", lite ? "0.001" : "0.003"),
            ("bos_token_id", "100000"),
            ("eos_token_id", "100001"),
            ("ep_size", "1"),
            ("first_k_dense_replace", "1"),
            ("hidden_act", "\"silu\""),
            ("hidden_size", lite ? "2048" : "5120"),
            ("initializer_range", "0.02"),
            ("intermediate_size", lite ? "10944" : "12288"),
            ("kv_lora_rank", "512"),
            ("max_position_embeddings", "163840"),
            ("model_type", "\"deepseek_v2\""),
            ("moe_intermediate_size", lite ? "1408" : "1536"),
            ("moe_layer_freq", "1"),
            ("n_group", lite ? "1" : "8"),
            ("n_routed_experts", "\(routed)"),
            ("n_shared_experts", "2"),
            ("norm_topk_prob", "false"),
            ("num_attention_heads", "\(heads)"),
            ("num_experts_per_tok", "6"),
            ("num_hidden_layers", "\(layers ?? (lite ? 27 : 60))"),
            ("num_key_value_heads", "\(heads)"),
            ("pretraining_tp", "1"),
            ("q_lora_rank", lite ? "null" : "1536"),
            ("qk_nope_head_dim", "128"),
            ("qk_rope_head_dim", "64"),
            ("rms_norm_eps", "1e-06"),
            ("rope_scaling", """
            {
                "beta_fast": 32,
                "beta_slow": 1,
                "factor": 40,
                "mscale": 0.707,
                "mscale_all_dim": 0.707,
                "original_max_position_embeddings": 4096,
                "type": "yarn"
              }
            """),
            ("rope_theta", "10000"),
            ("routed_scaling_factor", lite ? "1.0" : "16.0"),
            ("scoring_func", "\"softmax\""),
            ("seq_aux", "true"),
            ("tie_word_embeddings", "false"),
            ("topk_group", lite ? "1" : "3"),
            ("topk_method", lite ? "\"greedy\"" : "\"group_limited_greedy\""),
            ("torch_dtype", "\"bfloat16\""),
            ("transformers_version", "\"4.39.3\""),
            ("use_cache", "true"),
            ("v_head_dim", "128"),
            ("vocab_size", "102400"),
        ]
        let body = fields.map { "  \"\($0.0)\": \($0.1)" }.joined(separator: ",\n")
        return Data("{\n\(body)\n}\n".utf8)
    }
}
