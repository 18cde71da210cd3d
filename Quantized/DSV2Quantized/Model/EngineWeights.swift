import DSV2Core
import DSV2Formats
import DSV2Kernels

/// The weights of the quantized engine, as the kernels consume them: every projection a
/// `QuantizedMatrix` over the bytes of its `StoredTensor` (zero-copy from a mapped container, or
/// quantized in memory), norms widened to fp32. Built by `EngineWeightLoader` from any
/// `WeightSource`; shapes are annotated [rows (out), columns (in)].
public final class EngineWeights: @unchecked Sendable {
    public let config: ModelConfig
    let embedding: QuantizedMatrix          // [vocab, hidden]: rows are looked up, never multiplied
    let layers: [EngineLayer]
    let finalNorm: [Float]                  // [hidden]
    let lmHead: QuantizedMatrix             // [vocab, hidden]

    init(config: ModelConfig, embedding: QuantizedMatrix, layers: [EngineLayer], finalNorm: [Float],
         lmHead: QuantizedMatrix) {
        self.config = config
        self.embedding = embedding
        self.layers = layers
        self.finalNorm = finalNorm
        self.lmHead = lmHead
    }

    /// Bytes of all weights held (matrices in their stored types, norms as fp32).
    public var residentBytes: Int {
        var total = embedding.storedBytes + finalNorm.count * 4
        if lmHead.data != embedding.data { total += lmHead.storedBytes }
        for layer in layers { total += layer.residentBytes }
        return total
    }

    /// Bytes of weights one decode step streams: every attention matrix, the dense MLP or the
    /// router + the `num_experts_per_tok` selected experts (average expert size) + the shared
    /// experts, lm_head, and one embedding row. The decode roofline is this ÷ memory bandwidth.
    public var bytesReadPerToken: Int {
        var total = embedding.storedBytes / max(1, embedding.rows) + lmHead.storedBytes + finalNorm.count * 4
        for layer in layers {
            total += layer.attention.streamedBytes + (layer.inputNorm.count + layer.postAttentionNorm.count) * 4
            switch layer.feedForward {
            case let .dense(mlp): total += mlp.streamedBytes
            case let .moe(moe):
                let expertBytes = moe.experts.reduce(0) { $0 + $1.streamedBytes } / max(1, moe.experts.count)
                total += moe.router.storedBytes + config.expertsPerToken * expertBytes + (moe.shared?.streamedBytes ?? 0)
            }
        }
        return total
    }

    /// Storage type of each matrix role, for reports (e.g. "attention": "q8").
    public var typeSummary: [String: String] {
        var summary = ["embedding": embedding.type.rawValue, "lm_head": lmHead.type.rawValue]
        if let first = layers.first {
            summary["attention"] = first.attention.oProj.type.rawValue
            summary["attention.absorbed_kv_b"] = first.attention.wUKT.type.rawValue
        }
        for layer in layers {
            switch layer.feedForward {
            case let .dense(mlp): summary["dense_mlp"] = mlp.gate.type.rawValue
            case let .moe(moe):
                summary["router"] = moe.router.type.rawValue
                summary["routed_experts"] = moe.experts.first?.gate.type.rawValue
                if let shared = moe.shared { summary["shared_experts"] = shared.gate.type.rawValue }
            }
        }
        return summary
    }
}

/// One decoder layer: pre-norm attention and feed-forward blocks with residual adds.
struct EngineLayer {
    let inputNorm: [Float]           // [hidden] input_layernorm
    let attention: EngineAttentionWeights
    let postAttentionNorm: [Float]   // [hidden] post_attention_layernorm
    let feedForward: EngineFeedForward

    var residentBytes: Int {
        var total = (inputNorm.count + postAttentionNorm.count) * 4 + attention.streamedBytes
        switch feedForward {
        case let .dense(mlp): total += mlp.streamedBytes
        case let .moe(moe):
            total += moe.router.storedBytes + moe.experts.reduce(0) { $0 + $1.streamedBytes } + (moe.shared?.streamedBytes ?? 0)
        }
        return total
    }
}

/// MLA weights with `kv_b_proj` split per head for the absorbed form (paper section 2.1.2).
struct EngineAttentionWeights {
    enum Query {
        /// q_lora_rank null: q_proj [heads·qHeadDim, hidden].
        case plain(QuantizedMatrix)
        /// q_lora_rank set: q_a_proj [qLoraRank, hidden] → q_a_layernorm → q_b_proj [heads·qHeadDim, qLoraRank].
        case lowRank(a: QuantizedMatrix, norm: [Float], b: QuantizedMatrix)
    }
    let query: Query
    let kvA: QuantizedMatrix         // [kvLoraRank + qkRopeHeadDim, hidden]: W^DKV and W^KR
    let kvANorm: [Float]             // [kvLoraRank]
    /// W^UK_i transposed, head after head: [heads·kvLoraRank, qkNopeHeadDim]; row block i maps
    /// q^C_i to the latent space (absorbed into the query). f32 or f16, see `EngineWeightLoader`.
    let wUKT: QuantizedMatrix
    /// W^UV_i head after head: [heads·vHeadDim, kvLoraRank] (applied after attention). f32 or f16.
    let wUV: QuantizedMatrix
    let oProj: QuantizedMatrix       // [hidden, heads·vHeadDim]: W^O

    var streamedBytes: Int {
        var total = kvA.storedBytes + kvANorm.count * 4 + wUKT.storedBytes + wUV.storedBytes + oProj.storedBytes
        switch query {
        case let .plain(q): total += q.storedBytes
        case let .lowRank(a, norm, b): total += a.storedBytes + norm.count * 4 + b.storedBytes
        }
        return total
    }
}

/// down(silu(gate(x)) · up(x)).
struct EngineMLP {
    let gate: QuantizedMatrix   // [intermediate, hidden]
    let up: QuantizedMatrix     // [intermediate, hidden]
    let down: QuantizedMatrix   // [hidden, intermediate]

    var intermediate: Int { gate.rows }
    var streamedBytes: Int { gate.storedBytes + up.storedBytes + down.storedBytes }
}

struct EngineMoE {
    let router: QuantizedMatrix      // [nRoutedExperts, hidden] mlp.gate.weight (f32 in every quantized preset)
    let experts: [EngineMLP]         // nRoutedExperts, moe_intermediate_size wide
    let shared: EngineMLP?           // moe_intermediate_size × n_shared_experts wide
}

enum EngineFeedForward {
    case dense(EngineMLP)
    case moe(EngineMoE)
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
