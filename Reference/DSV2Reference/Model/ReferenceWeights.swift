import Foundation
import DSV2Core

/// Where the reference keeps its projection weights.
public enum WeightStorage: String, Sendable, CaseIterable {
    /// Widened to fp32 at load: 4 bytes per parameter of RAM, fastest.
    case fp32
    /// Left in the memory-mapped checkpoint (BF16/F16/F32) and widened block by block at use:
    /// identical results, RAM bounded by the page cache, so checkpoints larger than RAM still run.
    case mapped
}

/// The fp32 weights of a checkpoint cannot fit in this machine's memory.
public enum WeightStorageError: Error, CustomStringConvertible, Equatable {
    case exceedsMemory(checkpoint: String, neededBytes: UInt64, physicalBytes: UInt64)

    public var description: String {
        switch self {
        case let .exceedsMemory(checkpoint, needed, physical):
            return "\(checkpoint): the fp32 weights need \(needed >> 30) GiB but the machine has \(physical >> 30) GiB; use mapped weight storage (dsv2 … --weights mapped)"
        }
    }
}

/// down(silu(gate(x)) · up(x)) — every MLP of the model (docs/NUMERICS.md item 11).
public struct MLPWeights: Sendable {
    public var gateProj: Matrix  // [intermediate, hidden]
    public var upProj: Matrix    // [intermediate, hidden]
    public var downProj: Matrix  // [hidden, intermediate]
}

/// Multi-head Latent Attention weights (paper section 2.1).
public struct AttentionWeights: Sendable {
    public enum Query: Sendable {
        /// q_lora_rank null (V2-Lite): q = q_proj(x), [heads·qHeadDim, hidden].
        case plain(qProj: Matrix)
        /// q_lora_rank set (V2): q = q_b_proj(q_a_layernorm(q_a_proj(x))), eqs. 12-14.
        case lowRank(qAProj: Matrix, qALayernorm: [Float], qBProj: Matrix)
    }
    public var query: Query
    public var kvAProjWithMQA: Matrix  // [kvLoraRank + qkRopeHeadDim, hidden]: W^DKV and W^KR
    public var kvALayernorm: [Float]   // [kvLoraRank]
    public var kvBProj: Matrix         // [heads·(qkNope + vHead), kvLoraRank]: W^UK and W^UV head by head
    public var oProj: Matrix           // [hidden, heads·vHead]: W^O
}

/// DeepSeekMoE weights of one layer.
public struct MoEWeights: Sendable {
    public var router: Matrix           // [nRoutedExperts, hidden] (mlp.gate.weight)
    public var experts: [MLPWeights]    // nRoutedExperts × moe_intermediate_size wide
    public var sharedExperts: MLPWeights?  // one MLP, moe_intermediate_size × n_shared_experts wide
}

public enum FeedForwardWeights: Sendable {
    case dense(MLPWeights)
    case moe(MoEWeights)
}

public struct DecoderLayerWeights: Sendable {
    public var inputLayernorm: [Float]          // [hidden]
    public var attention: AttentionWeights
    public var postAttentionLayernorm: [Float]  // [hidden]
    public var feedForward: FeedForwardWeights
}

/// All weights of a model in fp32.
///
/// `init(checkpoint:config:)` is where Hugging Face names become fields; it asks
/// `CheckpointNames` for every name and checks every shape against
/// `ModelConfig.expectedTensorShapes()` (a missing tensor or wrong shape is an error naming it).
public struct ReferenceWeights: Sendable {
    public var embedTokens: Matrix  // [vocab, hidden]
    public var layers: [DecoderLayerWeights]
    public var finalNorm: [Float]   // [hidden]
    public var lmHead: Matrix       // [vocab, hidden] (the embedding when tie_word_embeddings)

    public init(embedTokens: Matrix, layers: [DecoderLayerWeights], finalNorm: [Float], lmHead: Matrix) {
        self.embedTokens = embedTokens
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// Loads every tensor of `config` from `checkpoint`: widened to fp32 in memory, or (`.mapped`)
    /// matrices left in the mapped checkpoint and widened at use; norm vectors are always widened.
    public init(checkpoint: SafetensorsCheckpoint, config: ModelConfig, storage: WeightStorage = .fp32) throws {
        let shapes = Dictionary(config.expectedTensorShapes().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        func vector(_ name: String) throws -> [Float] { try checkpoint.floats(name, shape: shapes[name]!) }
        func matrix(_ name: String) throws -> Matrix {
            let shape = shapes[name]!
            switch storage {
            case .fp32:
                return Matrix(rows: shape[0], columns: shape[1], values: try checkpoint.floats(name, shape: shape))
            case .mapped:
                let info = try checkpoint.info(name)
                guard info.dtype.isFloatingPoint else {
                    throw SafetensorsError.unsupportedDType(tensor: name, file: info.file.path, dtype: info.dtype.rawValue, wanted: "fp32")
                }
                return Matrix(rows: shape[0], columns: shape[1], mapped: try checkpoint.rawBytes(name), dtype: info.dtype, owner: checkpoint)
            }
        }
        // Check all shapes before loading anything, so a bad checkpoint fails fast.
        try checkpoint.validate(against: config)
        let fp32Bytes = UInt64(config.parameterCount) * 4
        if storage == .fp32, fp32Bytes > ProcessInfo.processInfo.physicalMemory {
            throw WeightStorageError.exceedsMemory(checkpoint: checkpoint.url.path, neededBytes: fp32Bytes,
                                                   physicalBytes: ProcessInfo.processInfo.physicalMemory)
        }
        try self.init(config: config, vector: vector, matrix: matrix)
    }

    /// Builds the weights from two loaders keyed by checkpoint name (shared by the checkpoint
    /// loader and `random(config:seed:)`).
    init(config: ModelConfig, vector: (String) throws -> [Float], matrix: (String) throws -> Matrix) throws {
        embedTokens = try matrix(CheckpointNames.embedTokens)
        var layers: [DecoderLayerWeights] = []
        for l in 0..<config.numHiddenLayers {
            let n = CheckpointNames.layer(l)
            let query: AttentionWeights.Query = config.qLoraRank == nil
                ? .plain(qProj: try matrix(n.qProj))
                : .lowRank(qAProj: try matrix(n.qAProj), qALayernorm: try vector(n.qALayernorm), qBProj: try matrix(n.qBProj))
            let attention = AttentionWeights(query: query, kvAProjWithMQA: try matrix(n.kvAProjWithMQA),
                                             kvALayernorm: try vector(n.kvALayernorm), kvBProj: try matrix(n.kvBProj),
                                             oProj: try matrix(n.oProj))
            let feedForward: FeedForwardWeights
            if config.isMoELayer(l) {
                let experts = try (0..<config.routedExpertCount).map { e in
                    MLPWeights(gateProj: try matrix(n.expertGateProj(e)), upProj: try matrix(n.expertUpProj(e)),
                               downProj: try matrix(n.expertDownProj(e)))
                }
                let shared = config.sharedExpertsIntermediateSize > 0
                    ? MLPWeights(gateProj: try matrix(n.sharedGateProj), upProj: try matrix(n.sharedUpProj),
                                 downProj: try matrix(n.sharedDownProj))
                    : nil
                feedForward = .moe(MoEWeights(router: try matrix(n.router), experts: experts, sharedExperts: shared))
            } else {
                feedForward = .dense(MLPWeights(gateProj: try matrix(n.mlpGateProj), upProj: try matrix(n.mlpUpProj),
                                                downProj: try matrix(n.mlpDownProj)))
            }
            layers.append(DecoderLayerWeights(inputLayernorm: try vector(n.inputLayernorm), attention: attention,
                                              postAttentionLayernorm: try vector(n.postAttentionLayernorm),
                                              feedForward: feedForward))
        }
        self.layers = layers
        finalNorm = try vector(CheckpointNames.finalNorm)
        lmHead = config.tieWordEmbeddings ? embedTokens : try matrix(CheckpointNames.lmHead)
    }

    /// Random weights for benchmarks and tests, reproducible from `seed`.
    ///
    /// Projections are uniform with variance 1/inFeatures (so activations stay O(1) through the
    /// layers and router logits are O(1), which spreads the routing); norm weights are 1; the
    /// embedding has unit variance.
    public static func random(config: ModelConfig, seed: UInt64) -> ReferenceWeights {
        var generator = SplitMix64(seed: seed)
        let shapes = Dictionary(config.expectedTensorShapes().map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        func uniform(_ count: Int, bound: Float) -> [Float] {
            var local = generator  // a local copy keeps the state in registers in the hot loop
            defer { generator = local }
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count { buffer[i] = local.nextSignedUnitFloat() * bound }
                initialized = count
            }
        }
        // Uniform(−a, a) has variance a²/3.
        return try! ReferenceWeights(config: config,
            vector: { name in [Float](repeating: 1, count: shapes[name]![0]) },
            matrix: { name in
                let shape = shapes[name]!
                let bound = name == CheckpointNames.embedTokens ? Float(3).squareRoot() : (3 / Float(shape[1])).squareRoot()
                return Matrix(rows: shape[0], columns: shape[1], values: uniform(shape[0] * shape[1], bound: bound))
            })
    }
}
