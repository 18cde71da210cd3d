import DSV2Core
import DSV2Formats
import DSV2Kernels

/// The weights of the quantized engine, as the kernels consume them: every projection a
/// `QuantizedMatrix` over the bytes of its `StoredTensor` (zero-copy from a mapped container, or
/// quantized in memory), norms widened to fp32. Built by `EngineWeightLoader` from any
/// `WeightSource`; shapes are annotated [rows (out), columns (in)].
public final class EngineWeights: @unchecked Sendable {
    public let config: ModelConfig
    let embedTokens: QuantizedMatrix        // [vocab, hidden]: rows are looked up, never multiplied
    let layers: [EngineLayer]
    let finalNorm: [Float]                  // [hidden]
    let lmHead: QuantizedMatrix             // [vocab, hidden]

    init(config: ModelConfig, weights: ModelWeights<QuantizedMatrix, [Float], AbsorbedKVB>) {
        self.config = config
        embedTokens = weights.embedTokens
        layers = weights.layers
        finalNorm = weights.finalNorm
        lmHead = weights.lmHead
    }

    /// Bytes of all weights held (matrices in their stored types, norms as fp32).
    public var residentBytes: Int {
        var total = embedTokens.storedBytes + finalNorm.count * 4
        if lmHead.data != embedTokens.data { total += lmHead.storedBytes }
        for layer in layers { total += layer.residentBytes }
        return total
    }

    /// Bytes of weights one decode step streams: every attention matrix, the dense MLP or the
    /// router + the `num_experts_per_tok` selected experts (average expert size) + the shared
    /// experts, lm_head, and one embedding row. The decode roofline is this ÷ memory bandwidth.
    public var bytesReadPerToken: Int {
        var total = embedTokens.storedBytes / max(1, embedTokens.rows) + lmHead.storedBytes + finalNorm.count * 4
        for layer in layers {
            total += layer.attention.streamedBytes + (layer.inputLayernorm.count + layer.postAttentionLayernorm.count) * 4
            switch layer.feedForward {
            case let .dense(mlp): total += mlp.streamedBytes
            case let .moe(moe):
                let expertBytes = moe.experts.reduce(0) { $0 + $1.streamedBytes } / max(1, moe.experts.count)
                total += moe.router.storedBytes + config.expertsPerToken * expertBytes + (moe.sharedExperts?.streamedBytes ?? 0)
            }
        }
        return total
    }

    /// Storage type of each matrix role, for reports (e.g. "attention": "q8").
    public var typeSummary: [String: String] {
        var summary = ["embedding": embedTokens.type.rawValue, "lm_head": lmHead.type.rawValue]
        if let first = layers.first {
            summary["attention"] = first.attention.oProj.type.rawValue
            summary["attention.absorbed_kv_b"] = first.attention.kvBProj.wUKT.type.rawValue
        }
        for layer in layers {
            switch layer.feedForward {
            case let .dense(mlp): summary["dense_mlp"] = mlp.gateProj.type.rawValue
            case let .moe(moe):
                summary["router"] = moe.router.type.rawValue
                summary["routed_experts"] = moe.experts.first?.gateProj.type.rawValue
                if let shared = moe.sharedExperts { summary["shared_experts"] = shared.gateProj.type.rawValue }
            }
        }
        return summary
    }
}

/// kv_b_proj in both forms of MLA (paper section 2.1.2): split per head at load by
/// `EngineWeightLoader.splitKVB` for the absorbed form (decode), and as stored for the expanded
/// form (prefill); the engine's `KVBProj` storage in `ModelWeights`.
struct AbsorbedKVB {
    /// W^UK_i transposed, head after head: [heads·kvLoraRank, qkNopeHeadDim]; row block i maps
    /// q^C_i to the latent space (absorbed into the query). f32 or f16, see `EngineWeightLoader`.
    let wUKT: QuantizedMatrix
    /// W^UV_i head after head: [heads·vHeadDim, kvLoraRank] (applied after attention). f32 or f16.
    let wUV: QuantizedMatrix
    /// kv_b_proj in its stored type, [heads·(qkNopeHeadDim + vHeadDim), kvLoraRank]: up-projects
    /// cached latents to every head's [k^C | v^C] (eqs. 10-11) in one mat-mat.
    let upProjection: QuantizedMatrix
}

/// The engine's storage of DSV2Core's weight structs: `QuantizedMatrix` projections, fp32 norms,
/// kv_b_proj split for the absorbed form. Shapes are annotated there.
typealias EngineLayer = DecoderLayerWeights<QuantizedMatrix, [Float], AbsorbedKVB>
typealias EngineAttentionWeights = AttentionWeights<QuantizedMatrix, [Float], AbsorbedKVB>
typealias EngineMLP = MLPWeights<QuantizedMatrix>
typealias EngineMoE = MoEWeights<QuantizedMatrix>

extension DecoderLayerWeights where Matrix == QuantizedMatrix, Vector == [Float], KVBProj == AbsorbedKVB {
    var residentBytes: Int {
        var total = (inputLayernorm.count + postAttentionLayernorm.count) * 4 + attention.streamedBytes
            + attention.kvBProj.upProjection.storedBytes
        switch feedForward {
        case let .dense(mlp): total += mlp.streamedBytes
        case let .moe(moe):
            total += moe.router.storedBytes + moe.experts.reduce(0) { $0 + $1.streamedBytes } + (moe.sharedExperts?.streamedBytes ?? 0)
        }
        return total
    }
}

extension AttentionWeights where Matrix == QuantizedMatrix, Vector == [Float], KVBProj == AbsorbedKVB {
    var streamedBytes: Int {
        var total = kvAProjWithMQA.storedBytes + kvALayernorm.count * 4 + kvBProj.wUKT.storedBytes + kvBProj.wUV.storedBytes
            + oProj.storedBytes
        switch query {
        case let .plain(q): total += q.storedBytes
        case let .lowRank(a, norm, b): total += a.storedBytes + norm.count * 4 + b.storedBytes
        }
        return total
    }
}

extension MLPWeights where Matrix == QuantizedMatrix {
    /// Width of the hidden layer (intermediate_size, moe_intermediate_size, or the shared experts').
    var intermediate: Int { gateProj.rows }
    var streamedBytes: Int { gateProj.storedBytes + upProj.storedBytes + downProj.storedBytes }
}

extension QuantizedMatrix {
    /// Bytes of this matrix (both planes for q8/q4).
    var storedBytes: Int { streamedBytes }

    /// Row `row` as floats with the normative dequantization (`ScalarQuantization.dequantize`),
    /// without allocating: the embedding lookup of every forward call.
    func dequantizeRowInPlace(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        let start = data + row * rowStride
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: start, byteCount: columns * 4)
        case .f16:
            for c in 0..<columns { out[c] = Float(start.loadUnaligned(fromByteOffset: c * 2, as: Float16.self)) }
        case .bf16:
            for c in 0..<columns {
                out[c] = Float(bitPattern: UInt32(start.loadUnaligned(fromByteOffset: c * 2, as: UInt16.self)) << 16)
            }
        case .q8, .q4:
            let blocks = blocksPerRow, rowScales = scales + row * blocks * 2
            for c in 0..<columns {
                let b = c / WeightType.blockSize, j = c % WeightType.blockSize
                let d = Float(rowScales.loadUnaligned(fromByteOffset: b * 2, as: Float16.self))
                let q = start + b * type.quantBytesPerBlock
                let value: Int
                if type == .q8 {
                    value = Int(Int8(bitPattern: q.load(fromByteOffset: j, as: UInt8.self)))
                } else {
                    let byte = q.load(fromByteOffset: j % 16, as: UInt8.self)
                    value = Int(j < 16 ? byte & 0x0F : byte >> 4) - 8
                }
                out[c] = d * Float(value)
            }
        }
    }
}
