import Foundation

/// The configuration of a DeepSeek-V2 family model, decoded from a Hugging Face `config.json`.
///
/// One type for the whole project: the reference engine, the quantized engine, the converter and
/// the command line all read the model's shape from here. Keys mirror `config.json` verbatim
/// (snake_case `CodingKeys`); the values are validated once, by `validate()`, which `load(from:)`
/// and `init(from:)` call. An unknown activation, scoring function, `topk_method` or
/// `rope_scaling` type is an error naming the field, never a silent default.
public struct ModelConfig: Codable, Equatable, Sendable {
    // MARK: Sizes
    public var vocabSize: Int
    public var hiddenSize: Int
    /// Width of the dense MLP of the first `firstKDenseReplace` layers.
    public var intermediateSize: Int
    /// Width of one routed expert (a shared expert MLP is `moeIntermediateSize × nSharedExperts` wide).
    public var moeIntermediateSize: Int
    public var numHiddenLayers: Int
    public var numAttentionHeads: Int

    // MARK: Multi-head Latent Attention
    /// Rank of the query compression (`q_a_proj → q_a_layernorm → q_b_proj`). `nil` means no
    /// compression: a plain `q_proj`, as in DeepSeek-V2-Lite. The key must be present in the JSON
    /// (null allowed) because the original config class defaults a missing key to 1536.
    public var qLoraRank: Int?
    /// Rank of the joint KV compression: width of the latent c_KV (paper eq. 9).
    public var kvLoraRank: Int
    public var qkNopeHeadDim: Int
    /// Width of the decoupled RoPE query/key (paper eqs. 14-15); the key part is shared by all heads.
    public var qkRopeHeadDim: Int
    public var vHeadDim: Int
    public var ropeTheta: Double
    /// `nil` means plain RoPE (`rope_scaling: null`).
    public var ropeScaling: RopeScaling?
    public var maxPositionEmbeddings: Int

    // MARK: DeepSeekMoE
    /// `nil` means no shared experts.
    public var nSharedExperts: Int?
    /// `nil` means no MoE at all: every layer is a dense MLP (as the original code does).
    public var nRoutedExperts: Int?
    public var numExpertsPerTok: Int?
    public var routedScalingFactor: Float
    public var topkMethod: TopkMethod
    public var nGroup: Int?
    public var topkGroup: Int?
    public var moeLayerFreq: Int
    public var firstKDenseReplace: Int
    public var normTopkProb: Bool
    public var scoringFunc: ScoringFunction

    // MARK: Misc
    public var rmsNormEps: Float
    public var tieWordEmbeddings: Bool
    public var hiddenAct: HiddenActivation
    public var bosTokenId: Int?
    /// Some configs hold a list of end tokens; a single id becomes a one-element list.
    public var eosTokenIds: [Int]

    public enum TopkMethod: String, Codable, Sendable, CaseIterable {
        /// Top-k over all routed experts' softmax scores (V2-Lite).
        case greedy
        /// Keep the `topk_group` groups with the best max score, then top-k inside them (V2).
        case groupLimitedGreedy = "group_limited_greedy"
    }

    public enum ScoringFunction: String, Codable, Sendable, CaseIterable {
        case softmax
    }

    public enum HiddenActivation: String, Codable, Sendable, CaseIterable {
        case silu
    }

    /// YaRN context extension (`rope_scaling: {"type": "yarn", …}`), docs/NUMERICS.md items 2-4.
    public struct RopeScaling: Codable, Equatable, Sendable {
        public var factor: Double
        public var originalMaxPositionEmbeddings: Int
        public var betaFast: Double
        public var betaSlow: Double
        /// Missing means 1 (original default).
        public var mscale: Double
        /// Missing means 0 (original default): then the softmax scale gets no extra factor.
        public var mscaleAllDim: Double

        public init(factor: Double, originalMaxPositionEmbeddings: Int, betaFast: Double = 32,
                    betaSlow: Double = 1, mscale: Double = 1, mscaleAllDim: Double = 0) {
            self.factor = factor
            self.originalMaxPositionEmbeddings = originalMaxPositionEmbeddings
            self.betaFast = betaFast
            self.betaSlow = betaSlow
            self.mscale = mscale
            self.mscaleAllDim = mscaleAllDim
        }

        enum CodingKeys: String, CodingKey {
            case type, ropeType = "rope_type", factor
            case originalMaxPositionEmbeddings = "original_max_position_embeddings"
            case betaFast = "beta_fast", betaSlow = "beta_slow", mscale
            case mscaleAllDim = "mscale_all_dim"
        }

        public init(from decoder: Decoder) throws {
            let c = try decoder.container(keyedBy: CodingKeys.self)
            let type = try c.decodeIfPresent(String.self, forKey: .type)
                ?? c.decodeIfPresent(String.self, forKey: .ropeType)
            guard let type else {
                throw ModelConfigError(field: "rope_scaling.type", message: "is missing (supported: \"yarn\", or rope_scaling null)")
            }
            guard type == "yarn" else {
                throw ModelConfigError(field: "rope_scaling.type",
                                       message: "\"\(type)\" is not supported (supported: \"yarn\", or rope_scaling null)")
            }
            guard let factor = try c.decodeIfPresent(Double.self, forKey: .factor) else {
                throw ModelConfigError(field: "rope_scaling.factor", message: "is missing")
            }
            guard let original = try c.decodeIfPresent(Int.self, forKey: .originalMaxPositionEmbeddings) else {
                throw ModelConfigError(field: "rope_scaling.original_max_position_embeddings", message: "is missing")
            }
            self.init(factor: factor, originalMaxPositionEmbeddings: original,
                      betaFast: try c.decodeIfPresent(Double.self, forKey: .betaFast) ?? 32,
                      betaSlow: try c.decodeIfPresent(Double.self, forKey: .betaSlow) ?? 1,
                      mscale: try c.decodeIfPresent(Double.self, forKey: .mscale) ?? 1,
                      mscaleAllDim: try c.decodeIfPresent(Double.self, forKey: .mscaleAllDim) ?? 0)
        }

        public func encode(to encoder: Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode("yarn", forKey: .type)
            try c.encode(factor, forKey: .factor)
            try c.encode(originalMaxPositionEmbeddings, forKey: .originalMaxPositionEmbeddings)
            try c.encode(betaFast, forKey: .betaFast)
            try c.encode(betaSlow, forKey: .betaSlow)
            try c.encode(mscale, forKey: .mscale)
            try c.encode(mscaleAllDim, forKey: .mscaleAllDim)
        }
    }

    enum CodingKeys: String, CodingKey {
        case vocabSize = "vocab_size", hiddenSize = "hidden_size"
        case intermediateSize = "intermediate_size", moeIntermediateSize = "moe_intermediate_size"
        case numHiddenLayers = "num_hidden_layers", numAttentionHeads = "num_attention_heads"
        case qLoraRank = "q_lora_rank", kvLoraRank = "kv_lora_rank"
        case qkNopeHeadDim = "qk_nope_head_dim", qkRopeHeadDim = "qk_rope_head_dim"
        case vHeadDim = "v_head_dim", ropeTheta = "rope_theta", ropeScaling = "rope_scaling"
        case maxPositionEmbeddings = "max_position_embeddings"
        case nSharedExperts = "n_shared_experts", nRoutedExperts = "n_routed_experts"
        case numExpertsPerTok = "num_experts_per_tok", routedScalingFactor = "routed_scaling_factor"
        case topkMethod = "topk_method", nGroup = "n_group", topkGroup = "topk_group"
        case moeLayerFreq = "moe_layer_freq", firstKDenseReplace = "first_k_dense_replace"
        case normTopkProb = "norm_topk_prob", scoringFunc = "scoring_func"
        case rmsNormEps = "rms_norm_eps", tieWordEmbeddings = "tie_word_embeddings"
        case hiddenAct = "hidden_act", bosTokenId = "bos_token_id", eosTokenId = "eos_token_id"
    }

    /// Memberwise initialiser (validate with `validate()` after building one by hand).
    public init(vocabSize: Int, hiddenSize: Int, intermediateSize: Int, moeIntermediateSize: Int,
                numHiddenLayers: Int, numAttentionHeads: Int, qLoraRank: Int?, kvLoraRank: Int,
                qkNopeHeadDim: Int, qkRopeHeadDim: Int, vHeadDim: Int, ropeTheta: Double = 10000,
                ropeScaling: RopeScaling?, maxPositionEmbeddings: Int, nSharedExperts: Int?,
                nRoutedExperts: Int?, numExpertsPerTok: Int?, routedScalingFactor: Float = 1,
                topkMethod: TopkMethod = .greedy, nGroup: Int? = nil, topkGroup: Int? = nil,
                moeLayerFreq: Int = 1, firstKDenseReplace: Int, normTopkProb: Bool,
                scoringFunc: ScoringFunction = .softmax, rmsNormEps: Float = 1e-6,
                tieWordEmbeddings: Bool = false, hiddenAct: HiddenActivation = .silu,
                bosTokenId: Int? = nil, eosTokenIds: [Int] = []) {
        self.vocabSize = vocabSize
        self.hiddenSize = hiddenSize
        self.intermediateSize = intermediateSize
        self.moeIntermediateSize = moeIntermediateSize
        self.numHiddenLayers = numHiddenLayers
        self.numAttentionHeads = numAttentionHeads
        self.qLoraRank = qLoraRank
        self.kvLoraRank = kvLoraRank
        self.qkNopeHeadDim = qkNopeHeadDim
        self.qkRopeHeadDim = qkRopeHeadDim
        self.vHeadDim = vHeadDim
        self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling
        self.maxPositionEmbeddings = maxPositionEmbeddings
        self.nSharedExperts = nSharedExperts
        self.nRoutedExperts = nRoutedExperts
        self.numExpertsPerTok = numExpertsPerTok
        self.routedScalingFactor = routedScalingFactor
        self.topkMethod = topkMethod
        self.nGroup = nGroup
        self.topkGroup = topkGroup
        self.moeLayerFreq = moeLayerFreq
        self.firstKDenseReplace = firstKDenseReplace
        self.normTopkProb = normTopkProb
        self.scoringFunc = scoringFunc
        self.rmsNormEps = rmsNormEps
        self.tieWordEmbeddings = tieWordEmbeddings
        self.hiddenAct = hiddenAct
        self.bosTokenId = bosTokenId
        self.eosTokenIds = eosTokenIds
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func required<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T {
            do {
                guard let value = try c.decodeIfPresent(type, forKey: key) else {
                    throw ModelConfigError(field: key.rawValue, message: "is missing")
                }
                return value
            } catch {
                throw ModelConfigError.unreadable(key.rawValue, type, error)
            }
        }
        func optional<T: Decodable>(_ type: T.Type, _ key: CodingKeys) throws -> T? {
            do { return try c.decodeIfPresent(type, forKey: key) } catch {
                throw ModelConfigError.unreadable(key.rawValue, type, error)
            }
        }
        func enumValue<E: RawRepresentable & CaseIterable>(_ type: E.Type, _ key: CodingKeys, default value: E?) throws -> E
        where E.RawValue == String {
            guard let raw = try optional(String.self, key) else {
                if let value { return value }
                throw ModelConfigError(field: key.rawValue, message: "is missing")
            }
            guard let parsed = E(rawValue: raw) else {
                let supported = E.allCases.map { "\"\($0.rawValue)\"" }.joined(separator: ", ")
                throw ModelConfigError(field: key.rawValue, message: "\"\(raw)\" is not supported (supported: \(supported))")
            }
            return parsed
        }

        vocabSize = try required(Int.self, .vocabSize)
        hiddenSize = try required(Int.self, .hiddenSize)
        intermediateSize = try required(Int.self, .intermediateSize)
        numHiddenLayers = try required(Int.self, .numHiddenLayers)
        numAttentionHeads = try required(Int.self, .numAttentionHeads)
        // Present-but-null means "no query compression"; absent is an error (see the property).
        guard c.contains(.qLoraRank) else {
            throw ModelConfigError(field: "q_lora_rank", message: "is missing (write null for a plain q_proj as in V2-Lite, or the rank); the original class would default it to 1536")
        }
        qLoraRank = try optional(Int.self, .qLoraRank)
        kvLoraRank = try required(Int.self, .kvLoraRank)
        qkNopeHeadDim = try required(Int.self, .qkNopeHeadDim)
        qkRopeHeadDim = try required(Int.self, .qkRopeHeadDim)
        vHeadDim = try required(Int.self, .vHeadDim)
        ropeTheta = try optional(Double.self, .ropeTheta) ?? 10000
        do {
            ropeScaling = try c.decodeIfPresent(RopeScaling.self, forKey: .ropeScaling)
        } catch let error as DecodingError {
            throw ModelConfigError(field: "rope_scaling", message: "is malformed (\(ModelConfigError.summary(error)))")
        }
        maxPositionEmbeddings = try optional(Int.self, .maxPositionEmbeddings) ?? 2048

        nSharedExperts = try optional(Int.self, .nSharedExperts)
        nRoutedExperts = try optional(Int.self, .nRoutedExperts)
        numExpertsPerTok = try optional(Int.self, .numExpertsPerTok)
        let hasMoE = nRoutedExperts != nil
        moeIntermediateSize = hasMoE ? try required(Int.self, .moeIntermediateSize)
                                     : try optional(Int.self, .moeIntermediateSize) ?? 0
        routedScalingFactor = try optional(Float.self, .routedScalingFactor) ?? 1
        // docs/NUMERICS.md item 13: the original default is the misspelt "gready", which its own code
        // cannot run; a MoE model must say which method it uses.
        topkMethod = try enumValue(TopkMethod.self, .topkMethod, default: hasMoE ? nil : .greedy)
        nGroup = try optional(Int.self, .nGroup)
        topkGroup = try optional(Int.self, .topkGroup)
        moeLayerFreq = try optional(Int.self, .moeLayerFreq) ?? 1
        firstKDenseReplace = try optional(Int.self, .firstKDenseReplace) ?? 0
        normTopkProb = try optional(Bool.self, .normTopkProb) ?? false
        scoringFunc = try enumValue(ScoringFunction.self, .scoringFunc, default: .softmax)

        rmsNormEps = try optional(Float.self, .rmsNormEps) ?? 1e-6
        tieWordEmbeddings = try optional(Bool.self, .tieWordEmbeddings) ?? false
        hiddenAct = try enumValue(HiddenActivation.self, .hiddenAct, default: .silu)
        bosTokenId = try optional(Int.self, .bosTokenId)
        if let single = try? c.decodeIfPresent(Int.self, forKey: .eosTokenId) {
            eosTokenIds = [single]
        } else {
            eosTokenIds = try optional([Int].self, .eosTokenId) ?? []
        }
        try validate()
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(vocabSize, forKey: .vocabSize)
        try c.encode(hiddenSize, forKey: .hiddenSize)
        try c.encode(intermediateSize, forKey: .intermediateSize)
        try c.encode(moeIntermediateSize, forKey: .moeIntermediateSize)
        try c.encode(numHiddenLayers, forKey: .numHiddenLayers)
        try c.encode(numAttentionHeads, forKey: .numAttentionHeads)
        if let qLoraRank { try c.encode(qLoraRank, forKey: .qLoraRank) } else { try c.encodeNil(forKey: .qLoraRank) }
        try c.encode(kvLoraRank, forKey: .kvLoraRank)
        try c.encode(qkNopeHeadDim, forKey: .qkNopeHeadDim)
        try c.encode(qkRopeHeadDim, forKey: .qkRopeHeadDim)
        try c.encode(vHeadDim, forKey: .vHeadDim)
        try c.encode(ropeTheta, forKey: .ropeTheta)
        if let ropeScaling { try c.encode(ropeScaling, forKey: .ropeScaling) } else { try c.encodeNil(forKey: .ropeScaling) }
        try c.encode(maxPositionEmbeddings, forKey: .maxPositionEmbeddings)
        try c.encodeIfPresent(nSharedExperts, forKey: .nSharedExperts)
        try c.encodeIfPresent(nRoutedExperts, forKey: .nRoutedExperts)
        try c.encodeIfPresent(numExpertsPerTok, forKey: .numExpertsPerTok)
        try c.encode(routedScalingFactor, forKey: .routedScalingFactor)
        try c.encode(topkMethod, forKey: .topkMethod)
        try c.encodeIfPresent(nGroup, forKey: .nGroup)
        try c.encodeIfPresent(topkGroup, forKey: .topkGroup)
        try c.encode(moeLayerFreq, forKey: .moeLayerFreq)
        try c.encode(firstKDenseReplace, forKey: .firstKDenseReplace)
        try c.encode(normTopkProb, forKey: .normTopkProb)
        try c.encode(scoringFunc, forKey: .scoringFunc)
        try c.encode(rmsNormEps, forKey: .rmsNormEps)
        try c.encode(tieWordEmbeddings, forKey: .tieWordEmbeddings)
        try c.encode(hiddenAct, forKey: .hiddenAct)
        try c.encodeIfPresent(bosTokenId, forKey: .bosTokenId)
        if eosTokenIds.count == 1 { try c.encode(eosTokenIds[0], forKey: .eosTokenId) }
        else if !eosTokenIds.isEmpty { try c.encode(eosTokenIds, forKey: .eosTokenId) }
    }

    // MARK: Loading

    /// Decodes and validates `config.json`; `url` may be the file or the checkpoint folder.
    /// Every error is a `ModelConfigError` naming the file and, where one is at fault, the field.
    public static func load(from url: URL) throws -> ModelConfig {
        var isDirectory: ObjCBool = false
        let file = FileManager.default.fileExists(atPath: url.path, isDirectory: &isDirectory) && isDirectory.boolValue
            ? url.appendingPathComponent("config.json") : url
        let data: Data
        do { data = try Data(contentsOf: file) } catch {
            throw ModelConfigError(file: file.path, field: nil, message: "cannot be read (\(error.localizedDescription))")
        }
        return try decode(data, file: file.path)
    }

    /// Decodes and validates config JSON held in memory (`file` only names it in errors).
    public static func decode(_ data: Data, file: String? = nil) throws -> ModelConfig {
        do {
            return try JSONDecoder().decode(ModelConfig.self, from: data)
        } catch var error as ModelConfigError {
            error.file = file
            throw error
        } catch let error as DecodingError {
            throw ModelConfigError(file: file, field: nil, message: "is not a valid config.json (\(ModelConfigError.summary(error)))")
        }
    }

    /// Checks the values once, at load. Throws a `ModelConfigError` naming the first bad field.
    ///
    /// Every size is bounded (`Limits`, docs/LIMITS.md) before anything is derived from it, so
    /// no product of sizes can overflow and no loop over layers or experts can run away; then the
    /// layer walk is counted with a budget on tensors and parameters.
    public func validate() throws {
        func inRange(_ value: Int, _ field: String, _ range: ClosedRange<Int>) throws {
            guard range.contains(value) else {
                let lower = range.lowerBound == 1 ? "positive" : range.lowerBound == 0 ? "non-negative" : "≥ \(range.lowerBound)"
                throw ModelConfigError(field: field, message: "must be \(lower) and at most \(range.upperBound), got \(value)")
            }
        }
        func finite(_ value: Double, _ field: String, positive: Bool = false) throws {
            guard value.isFinite, !positive || value > 0 else {
                throw ModelConfigError(field: field, message: "must be a finite\(positive ? " positive" : "") number, got \(value)")
            }
        }
        typealias L = Limits
        try inRange(vocabSize, "vocab_size", 1...L.vocabSize)
        try inRange(hiddenSize, "hidden_size", 1...L.hiddenSize)
        try inRange(intermediateSize, "intermediate_size", 0...L.intermediateSize)
        try inRange(moeIntermediateSize, "moe_intermediate_size", 0...L.intermediateSize)
        try inRange(numHiddenLayers, "num_hidden_layers", 1...L.layers)
        try inRange(numAttentionHeads, "num_attention_heads", 1...L.attentionHeads)
        if let qLoraRank { try inRange(qLoraRank, "q_lora_rank", 1...L.loraRank) }
        try inRange(kvLoraRank, "kv_lora_rank", 1...L.loraRank)
        try inRange(qkNopeHeadDim, "qk_nope_head_dim", 0...L.headDim)
        try inRange(qkRopeHeadDim, "qk_rope_head_dim", 1...L.headDim)
        guard qkRopeHeadDim % 2 == 0 else {
            throw ModelConfigError(field: "qk_rope_head_dim", message: "must be even (RoPE rotates pairs), got \(qkRopeHeadDim)")
        }
        try inRange(vHeadDim, "v_head_dim", 1...L.headDim)
        try inRange(maxPositionEmbeddings, "max_position_embeddings", 1...L.positions)
        try inRange(moeLayerFreq, "moe_layer_freq", 1...L.layers)
        try inRange(firstKDenseReplace, "first_k_dense_replace", 0...L.layers)
        try finite(ropeTheta, "rope_theta", positive: true)
        guard ropeTheta <= L.ropeTheta else {
            throw ModelConfigError(field: "rope_theta", message: "must be at most \(L.ropeTheta), got \(ropeTheta)")
        }
        try finite(Double(rmsNormEps), "rms_norm_eps", positive: true)
        try finite(Double(routedScalingFactor), "routed_scaling_factor")
        if let scaling = ropeScaling { try validate(scaling) }
        if (0..<numHiddenLayers).contains(where: isDenseLayer) { try inRange(intermediateSize, "intermediate_size", 1...L.intermediateSize) }
        if let routed = nRoutedExperts {
            try inRange(routed, "n_routed_experts", 1...L.routedExperts)
            try inRange(moeIntermediateSize, "moe_intermediate_size", 1...L.intermediateSize)
            guard let topK = numExpertsPerTok else {
                throw ModelConfigError(field: "num_experts_per_tok", message: "is missing (required when n_routed_experts is set)")
            }
            guard topK >= 1, topK <= routed else {
                throw ModelConfigError(field: "num_experts_per_tok", message: "must be in 1...\(routed) (n_routed_experts), got \(topK)")
            }
            if let shared = nSharedExperts { try inRange(shared, "n_shared_experts", 0...L.sharedExperts) }
            if topkMethod == .groupLimitedGreedy {
                guard let nGroup, nGroup > 0, routed % nGroup == 0 else {
                    throw ModelConfigError(field: "n_group", message: "must divide n_routed_experts (\(routed)) for group_limited_greedy, got \(nGroup.map(String.init) ?? "null")")
                }
                guard let topkGroup, topkGroup >= 1, topkGroup <= nGroup else {
                    throw ModelConfigError(field: "topk_group", message: "must be in 1...\(nGroup) (n_group) for group_limited_greedy, got \(topkGroup.map(String.init) ?? "null")")
                }
                guard topK <= topkGroup * (routed / nGroup) else {
                    throw ModelConfigError(field: "num_experts_per_tok", message: "exceeds the experts in the kept groups (topk_group × n_routed_experts / n_group)")
                }
            }
        }
        try checkModelSize()
    }

    /// rope_scaling: every value finite, and the scales YaRN derives from them (the softmax
    /// scale, the cos/sin amplitude) finite and positive: a negative or infinite scale gives
    /// NaN or sign-flipped logits, never an error later.
    private func validate(_ scaling: RopeScaling) throws {
        func check(_ ok: Bool, _ key: String, _ message: String) throws {
            guard ok else { throw ModelConfigError(field: "rope_scaling.\(key)", message: message) }
        }
        try check(scaling.factor.isFinite && scaling.factor > 0 && scaling.factor <= Limits.ropeScalingFactor, "factor",
                  "must be a finite positive number at most \(Limits.ropeScalingFactor), got \(scaling.factor)")
        try check((1...Limits.positions).contains(scaling.originalMaxPositionEmbeddings), "original_max_position_embeddings",
                  "must be positive and at most \(Limits.positions), got \(scaling.originalMaxPositionEmbeddings)")
        try check(scaling.betaFast.isFinite && scaling.betaFast > 0, "beta_fast", "must be a finite positive number, got \(scaling.betaFast)")
        try check(scaling.betaSlow.isFinite && scaling.betaSlow > 0, "beta_slow", "must be a finite positive number, got \(scaling.betaSlow)")
        // YaRN divides by ln(rope_theta) to place its correction range.
        guard ropeTheta > 1 else {
            throw ModelConfigError(field: "rope_theta", message: "must be greater than 1 with rope_scaling (YaRN divides by ln rope_theta), got \(ropeTheta)")
        }
        for (key, value) in [("mscale", scaling.mscale), ("mscale_all_dim", scaling.mscaleAllDim)] {
            let scale = Self.yarnMScale(factor: scaling.factor, mscale: value)
            try check(value.isFinite && scale.isFinite && scale > 0, key,
                      "gives the YaRN scale 0.1·\(key)·ln(factor) + 1 = \(scale), which must be finite and positive (got \(key) \(value))")
        }
        // The engines apply both in fp32: they must be finite and non-zero there too.
        func usable(_ x: Double) -> Bool { Float(x).isFinite && Float(x) > 0 }
        try check(usable(softmaxScale), "mscale_all_dim",
                  "gives a softmax scale of \(softmaxScale), which must be finite and positive in fp32")
        try check(usable(ropeAmplitude), "mscale",
                  "gives a cos/sin amplitude of \(ropeAmplitude) (YaRN scale of mscale / of mscale_all_dim), which must be finite and positive in fp32")
    }

    /// Walks the tensors of the model (the one layer walk, recording nothing) with a budget: at
    /// most `Limits.tensors` tensors and `Limits.parameters` parameters. The per-field limits
    /// keep every single shape product far from overflow; this bounds their sum and the walk.
    private func checkModelSize() throws {
        var tensors = 0, parameters = 0
        func count(_ name: String, _ shape: [Int]) throws {
            tensors += 1
            guard tensors <= Limits.tensors else {
                throw ModelConfigError(field: nRoutedExperts == nil ? "num_hidden_layers" : "n_routed_experts",
                                       message: "gives more than \(Limits.tensors) tensors (num_hidden_layers × tensors per layer), the limit")
            }
            parameters += shape.reduce(1, *)
            guard parameters <= Limits.parameters else {
                throw ModelConfigError(field: nil, message: "describes a model of more than \(Limits.parameters) parameters, the limit (reached at \(name) \(shape)); check the sizes")
            }
        }
        _ = try ModelWeights<Void, Void, Void>.load(config: self, matrix: count, vector: count, kvBProj: count)
    }

    /// Upper bounds on the config's sizes, far above any real model (docs/LIMITS.md has the table
    /// with the real values): they keep every size derived from a config inside `Int` with room
    /// to spare, and bound what a hostile config can make a loader allocate or loop over.
    public enum Limits {
        public static let vocabSize = 1 << 24            // 16,777,216   (V3: 129,280)
        public static let hiddenSize = 1 << 18           // 262,144      (V3: 7,168)
        public static let intermediateSize = 1 << 22     // 4,194,304    (V3: 18,432)
        public static let layers = 1 << 16               // 65,536       (V3: 61)
        public static let attentionHeads = 1 << 14       // 16,384       (V2: 128)
        public static let headDim = 1 << 14              // 16,384       (V2: 128)
        public static let loraRank = 1 << 18             // 262,144      (V2: 1,536)
        public static let positions = 1 << 24            // 16,777,216   (V2: 163,840)
        public static let routedExperts = 1 << 16        // 65,536       (V3: 256)
        public static let sharedExperts = 1 << 10        // 1,024        (V2: 2)
        public static let ropeTheta = 1e15               //              (V2: 10,000)
        public static let ropeScalingFactor = Double(1 << 20)  //        (V2: 40)
        /// Tensors in the whole model (V3: about 92,000).
        public static let tensors = 1 << 20              // 1,048,576
        /// Parameters in the whole model (V3: 6.7·10^11).
        public static let parameters = 1 << 46           // 7.0·10^13
    }
}

/// A bad or unsupported `config.json`: names the file and the field at fault.
public struct ModelConfigError: Error, CustomStringConvertible, Equatable {
    public var file: String?
    /// The `config.json` key at fault (dotted for nested keys, e.g. `rope_scaling.type`).
    public var field: String?
    public var message: String

    public init(file: String? = nil, field: String?, message: String) {
        self.file = file
        self.field = field
        self.message = message
    }

    public var description: String {
        let place = file.map { "\($0): " } ?? ""
        if let field { return "\(place)config field \"\(field)\" \(message)" }
        return "\(place)\(message)"
    }

    /// Field `field` could not be read as `type`: the wrong JSON type, or a number the type
    /// cannot hold (a fraction or 2⁶⁴ for an integer, 1e999 for a double: the decoder's own
    /// error would only say the whole file is not valid JSON).
    static func unreadable(_ field: String, _ type: Any.Type, _ error: Error) -> Error {
        if error is ModelConfigError { return error }
        if let error = error as? DecodingError {
            return ModelConfigError(field: field, message: "has the wrong type (\(summary(error)))")
        }
        return ModelConfigError(field: field, message: "cannot be read as \(type) (\(error))")
    }

    static func summary(_ error: DecodingError) -> String {
        switch error {
        case let .typeMismatch(type, context): return "expected \(type) at \(path(context)): \(context.debugDescription)"
        case let .valueNotFound(type, context): return "expected \(type) at \(path(context))"
        case let .keyNotFound(key, context): return "missing \(key.stringValue) at \(path(context))"
        case let .dataCorrupted(context): return "\(context.debugDescription) \(path(context))"
        @unknown default: return "\(error)"
        }
    }

    private static func path(_ context: DecodingError.Context) -> String {
        context.codingPath.map(\.stringValue).joined(separator: ".")
    }
}
