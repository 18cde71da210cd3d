import DSV2Core
import Foundation

/// `ModelConfig` ↔ the `deepseek2.*` metadata of a GGUF file, as llama.cpp's
/// `convert_hf_to_gguf.py` writes it and llama.cpp reads it:
///
/// - MLA: `attention.kv_lora_rank`; `attention.key_length_mla` / `value_length_mla` give the
///   per-head key (qk_nope + qk_rope) and value widths of the split layout (`attn_k_b`/`attn_v_b`),
///   while `key_length` / `value_length` then hold kv_lora_rank + qk_rope and kv_lora_rank. Files
///   without the `_mla` keys (the older unsplit `attn_kv_b`) hold the per-head widths in
///   `key_length` / `value_length`.
/// - Keys the converter omits when the Hugging Face value is null mean "none": a missing (or 0)
///   `attention.q_lora_rank` is a plain q_proj (V2-Lite), a missing `expert_count` no MoE, a missing
///   `expert_shared_count` no shared experts, a missing `expert_weights_scale` 1, a missing
///   `expert_weights_norm` false, a missing `expert_gating_func` softmax (V2's only scoring).
/// - GGUF has no `topk_method`: more than one expert group with fewer groups kept
///   (`expert_group_used_count` < `expert_group_count`) is group_limited_greedy, anything else greedy.
/// - YaRN: `rope.scaling.yarn_log_multiplier` is 0.1·mscale_all_dim; llama.cpp assumes mscale =
///   mscale_all_dim (true of every DeepSeek-V2 config), so both are read from it.
public enum GGUFModelMetadata {
    public static let architecture = "deepseek2"

    static func key(_ suffix: String) -> String { "\(architecture).\(suffix)" }

    /// The model config a GGUF file describes. Errors name the key.
    public static func modelConfig(_ file: GGUFFile) throws -> ModelConfig {
        func fail(_ key: String, _ message: String) -> GGUFError { GGUFError(path: file.path, subject: key, message) }
        guard let arch = file.value("general.architecture") else { throw fail("general.architecture", "is missing") }
        guard arch.stringValue == architecture else {
            throw fail("general.architecture", "is \(arch.summary); only \"\(architecture)\" (DeepSeek-V2 family) is supported")
        }
        // Bounds far above any DeepSeek-V2 (60 layers, 160 experts, 102400 tokens, 5120 wide):
        // a hostile count must not make the tensor list itself enormous.
        let limits = ["block_count": 4096, "expert_count": 65536, "vocab_size": 1 << 24]
        func int(_ suffix: String) throws -> Int? {
            let name = key(suffix)
            guard let value = file.value(name) else { return nil }
            let limit = limits[suffix] ?? 1 << 24
            guard let v = value.intValue, v >= 0, v <= limit else {
                throw fail(name, "must be an integer in 0...\(limit), got \(value.summary)")
            }
            return v
        }
        func required(_ suffix: String) throws -> Int {
            guard let v = try int(suffix) else { throw fail(key(suffix), "is missing") }
            return v
        }
        func double(_ suffix: String) throws -> Double? {
            let name = key(suffix)
            guard let value = file.value(name) else { return nil }
            guard let v = value.doubleValue, v.isFinite else { throw fail(name, "must be a number, got \(value.summary)") }
            return v
        }

        let layers = try required("block_count")
        let hidden = try required("embedding_length")
        let heads = try required("attention.head_count")
        let kvLoraRank = try required("attention.kv_lora_rank")
        let rope = try required("rope.dimension_count")
        let keyLength = try required("attention.key_length")
        let valueLength = try required("attention.value_length")
        let nope: Int, vHead: Int
        if let keyMLA = try int("attention.key_length_mla"), keyMLA > 0 {
            guard let valueMLA = try int("attention.value_length_mla"), valueMLA > 0 else {
                throw fail(key("attention.value_length_mla"), "is missing (key_length_mla is present)")
            }
            guard keyMLA > rope else { throw fail(key("attention.key_length_mla"), "\(keyMLA) must exceed rope.dimension_count \(rope)") }
            guard keyLength == kvLoraRank + rope else {
                throw fail(key("attention.key_length"), "is \(keyLength); the MLA layout needs kv_lora_rank + rope.dimension_count = \(kvLoraRank + rope)")
            }
            guard valueLength == kvLoraRank else {
                throw fail(key("attention.value_length"), "is \(valueLength); the MLA layout needs kv_lora_rank = \(kvLoraRank)")
            }
            nope = keyMLA - rope
            vHead = valueMLA
        } else {
            guard keyLength > rope else { throw fail(key("attention.key_length"), "\(keyLength) must exceed rope.dimension_count \(rope)") }
            nope = keyLength - rope
            vHead = valueLength
        }
        let qLoraRank = try int("attention.q_lora_rank").flatMap { $0 > 0 ? $0 : nil }

        let experts = try int("expert_count").flatMap { $0 > 0 ? $0 : nil }
        var expertsPerToken: Int?, moeWidth = 0, shared: Int?
        if experts != nil {
            expertsPerToken = try required("expert_used_count")
            moeWidth = try required("expert_feed_forward_length")
            shared = try int("expert_shared_count").flatMap { $0 > 0 ? $0 : nil }
        }
        let leadingDense = try int("leading_dense_block_count") ?? 0
        let denseWidth = try int("feed_forward_length")
        if leadingDense > 0 || experts == nil, denseWidth == nil { throw fail(key("feed_forward_length"), "is missing (the model has dense layers)") }

        var scoring = ModelConfig.ScoringFunction.softmax
        if let gating = try int("expert_gating_func"), gating != 0 {
            guard gating == 1 else {
                throw fail(key("expert_gating_func"), "is \(gating) (\(gating == 2 ? "sigmoid, DeepSeek-V3" : "unknown")); DeepSeek-V2 routing is softmax (1)")
            }
            scoring = .softmax
        }
        let groups = try int("expert_group_count"), groupsUsed = try int("expert_group_used_count")
        let grouped = (groups ?? 1) > 1 && (groupsUsed ?? groups ?? 1) < (groups ?? 1)
        var scale = Float(try double("expert_weights_scale") ?? 1)
        if scale == 0 { scale = 1 }
        var normTopk = false
        if let value = file.value(key("expert_weights_norm")) {
            guard let flag = value.boolValue else { throw fail(key("expert_weights_norm"), "must be a bool, got \(value.summary)") }
            normTopk = flag
        }

        var ropeScaling: ModelConfig.RopeScaling?
        if let typeValue = file.value(key("rope.scaling.type")) {
            guard let type = typeValue.stringValue else { throw fail(key("rope.scaling.type"), "must be a string") }
            switch type {
            case "none": break
            case "yarn":
                guard let factor = try double("rope.scaling.factor") else { throw fail(key("rope.scaling.factor"), "is missing (rope.scaling.type is yarn)") }
                let original = try required("rope.scaling.original_context_length")
                let mscale = try double("rope.scaling.yarn_log_multiplier").map(mscaleAllDim(fromLogMultiplier:)) ?? 0
                ropeScaling = .init(factor: factor, originalMaxPositionEmbeddings: original,
                                    betaFast: try double("rope.scaling.yarn_beta_fast") ?? 32,
                                    betaSlow: try double("rope.scaling.yarn_beta_slow") ?? 1,
                                    mscale: mscale == 0 ? 1 : mscale, mscaleAllDim: mscale)
            default:
                throw fail(key("rope.scaling.type"), "\"\(type)\" is not supported (DeepSeek-V2 uses yarn, or none)")
            }
        }
        guard let eps = try double("attention.layer_norm_rms_epsilon") else {
            throw fail(key("attention.layer_norm_rms_epsilon"), "is missing")
        }

        // vocab_size: the key, else the token list, else the embedding's rows.
        var vocab = try int("vocab_size")
        if vocab == nil { vocab = file.value("tokenizer.ggml.tokens")?.arrayValue?.count }
        if vocab == nil { vocab = file.tensor("token_embd.weight")?.dimensions.last }
        guard let vocab else { throw fail(key("vocab_size"), "is missing (and there is neither a token list nor token_embd.weight)") }
        let bos = file.value("tokenizer.ggml.bos_token_id")?.intValue
        let eos = file.value("tokenizer.ggml.eos_token_id")?.intValue

        var config = ModelConfig(
            vocabSize: vocab, hiddenSize: hidden, intermediateSize: denseWidth ?? 0, moeIntermediateSize: moeWidth,
            numHiddenLayers: layers, numAttentionHeads: heads, qLoraRank: qLoraRank, kvLoraRank: kvLoraRank,
            qkNopeHeadDim: nope, qkRopeHeadDim: rope, vHeadDim: vHead,
            ropeTheta: try double("rope.freq_base") ?? 10000, ropeScaling: ropeScaling,
            maxPositionEmbeddings: try int("context_length") ?? 4096,
            nSharedExperts: shared, nRoutedExperts: experts, numExpertsPerTok: expertsPerToken,
            routedScalingFactor: scale, topkMethod: grouped ? .groupLimitedGreedy : .greedy,
            nGroup: groups, topkGroup: groupsUsed, moeLayerFreq: 1, firstKDenseReplace: leadingDense,
            normTopkProb: normTopk, scoringFunc: scoring, rmsNormEps: Float(eps),
            tieWordEmbeddings: file.tensor("output.weight") == nil, hiddenAct: .silu,
            bosTokenId: bos, eosTokenIds: eos.map { [$0] } ?? [])
        if experts == nil { config.nGroup = nil; config.topkGroup = nil }
        do { try config.validate() } catch let error as ModelConfigError {
            throw GGUFError(path: file.path, subject: "metadata", "describes an invalid model: \(error)")
        }
        return config
    }

    /// mscale_all_dim from the stored f32 0.1·mscale_all_dim: the shortest decimal (up to 9
    /// significant digits) that the converter's formula maps to exactly the stored value, so
    /// 0.707 comes back as 0.707 (and the softmax scale is the Hugging Face config's to the bit).
    static func mscaleAllDim(fromLogMultiplier stored: Double) -> Double {
        let target = Float(stored), estimate = stored / 0.1
        guard estimate != 0, estimate.isFinite else { return estimate }
        for digits in 1...9 {
            guard let candidate = Double(String(format: "%.\(digits)g", estimate)) else { continue }
            if Float(0.1 * candidate) == target { return candidate }
        }
        return estimate
    }

    /// The metadata llama.cpp's converter writes for `config` (deepseek2, split MLA layout), in
    /// its order. Errors name the config field GGUF cannot express.
    public static func metadata(for config: ModelConfig) throws -> [(String, GGUFValue)] {
        func unsupported(_ field: String, _ message: String) -> ModelConfigError { ModelConfigError(field: field, message: message) }
        guard config.moeLayerFreq == 1 else {
            throw unsupported("moe_layer_freq", "is \(config.moeLayerFreq); llama.cpp's deepseek2 has MoE in every layer after the leading dense ones")
        }
        if let s = config.ropeScaling, s.mscale != s.mscaleAllDim {
            throw unsupported("rope_scaling.mscale", "(\(s.mscale)) differs from mscale_all_dim (\(s.mscaleAllDim)); llama.cpp's deepseek2 assumes they are equal")
        }
        func u32(_ v: Int) -> GGUFValue { .uint(UInt64(v), .uint32) }
        func f32(_ v: Double) -> GGUFValue { .float(Double(Float(v)), .float32) }
        var kv: [(String, GGUFValue)] = [
            (key("block_count"), u32(config.numHiddenLayers)),
            (key("context_length"), u32(config.maxPositionEmbeddings)),
            (key("embedding_length"), u32(config.hiddenSize)),
            (key("feed_forward_length"), u32(config.intermediateSize)),
            (key("attention.head_count"), u32(config.numAttentionHeads)),
            (key("attention.head_count_kv"), u32(1)),
            (key("rope.freq_base"), f32(config.ropeTheta)),
            (key("attention.layer_norm_rms_epsilon"), f32(Double(config.rmsNormEps))),
        ]
        if let topK = config.numExpertsPerTok, config.nRoutedExperts != nil { kv.append((key("expert_used_count"), u32(topK))) }
        if config.nRoutedExperts != nil {
            if let g = config.nGroup { kv.append((key("expert_group_count"), u32(g))) }
            if let g = config.topkGroup { kv.append((key("expert_group_used_count"), u32(g))) }
            kv.append((key("expert_gating_func"), u32(1)))
        }
        if let s = config.ropeScaling {
            kv.append((key("rope.scaling.type"), .string("yarn")))
            kv.append((key("rope.scaling.factor"), f32(s.factor)))
            kv.append((key("rope.scaling.original_context_length"), u32(s.originalMaxPositionEmbeddings)))
            kv.append((key("rope.scaling.yarn_beta_fast"), f32(s.betaFast)))
            kv.append((key("rope.scaling.yarn_beta_slow"), f32(s.betaSlow)))
        }
        kv.append((key("leading_dense_block_count"), u32(config.nRoutedExperts == nil ? config.numHiddenLayers : config.firstKDenseReplace)))
        kv.append((key("vocab_size"), u32(config.vocabSize)))
        if let q = config.qLoraRank { kv.append((key("attention.q_lora_rank"), u32(q))) }
        kv.append((key("attention.kv_lora_rank"), u32(config.kvLoraRank)))
        kv.append((key("attention.key_length"), u32(config.kvLoraRank + config.qkRopeHeadDim)))
        kv.append((key("attention.value_length"), u32(config.kvLoraRank)))
        kv.append((key("attention.key_length_mla"), u32(config.qHeadDim)))
        kv.append((key("attention.value_length_mla"), u32(config.vHeadDim)))
        kv.append((key("expert_feed_forward_length"), u32(config.nRoutedExperts == nil ? config.intermediateSize : config.moeIntermediateSize)))
        if let e = config.nRoutedExperts { kv.append((key("expert_count"), u32(e))) }
        kv.append((key("expert_shared_count"), u32(config.nSharedExperts ?? 0)))
        kv.append((key("expert_weights_scale"), f32(Double(config.routedScalingFactor))))
        if config.normTopkProb { kv.append((key("expert_weights_norm"), .bool(true))) }
        kv.append((key("rope.dimension_count"), u32(config.qkRopeHeadDim)))
        if let s = config.ropeScaling, s.mscaleAllDim != 0 {
            kv.append((key("rope.scaling.yarn_log_multiplier"), f32(0.1 * s.mscaleAllDim)))
        }
        return kv
    }
}
