import DSV2Core
import DSV2Formats
import Foundation

/// Any `WeightSource` (a `.dsv2` container, a Hugging Face folder) → a `deepseek2` GGUF file
/// laid out as llama.cpp's converter writes it, with the split MLA layout.
///
/// Types: q8 → Q8_0 and q4 → Q4_0 with dsv2's blocks unchanged (the scales interleaved back:
/// identical values, so an error-minimising q4 becomes a better Q4_0 file); f32 / f16 / bf16 as
/// stored; norms and the router F32 (exact widening). A quantized matrix whose rows are not whole
/// blocks of 32 (ggml requires them) is written as exact F32.
///
/// MLA split: `attn_v_b` [heads, v, rank] are kv_b_proj's v rows, in kv_b's type (whole rows:
/// bit-exact blocks). `attn_k_b` [heads, rank, nope] is the transpose of the k rows: a float
/// kv_b keeps its type; a q8/q4 kv_b gives exact F32 (its blocks run along kv_lora_rank, the
/// transposed rows along qk_nope), which the importer turns back into the same q8/q4 blocks'
/// values.
public enum GGUFExporter {
    public struct Summary: Sendable {
        public var tensors: Int
        public var bytes: Int
        public var typeCounts: [String: Int]
    }

    /// Writes `source` as GGUF at `url`. `name` fills `general.name`.
    @discardableResult
    public static func export(_ source: WeightSource, name: String, to url: URL,
                              progress: ((Int, Int, String) -> Void)? = nil) throws -> Summary {
        let config = try ModelConfig.decode(source.configJSON, file: "config.json")
        let plans = try tensorPlans(source, config: config)
        var metadata: [(String, GGUFValue)] = [
            ("general.architecture", .string(GGUFModelMetadata.architecture)),
            ("general.type", .string("model")),
            ("general.name", .string(name)),
        ]
        metadata += try GGUFModelMetadata.metadata(for: config)
        metadata.append(("general.file_type", .uint(UInt64(fileType(plans)), .uint32)))
        metadata += try GGUFTokenizerFiles.metadata(for: source.tokenizerFiles, vocabSize: config.vocabSize)
        metadata.append(("general.quantization_version", .uint(2, .uint32)))
        try GGUFWriter.write(metadata: metadata, tensors: plans, to: url) { done, tensor in
            progress?(done, plans.count, tensor)
        }
        var counts: [String: Int] = [:]
        for plan in plans { counts[plan.type.description, default: 0] += 1 }
        return Summary(tensors: plans.count, bytes: plans.reduce(0) { $0 + $1.byteCount }, typeCounts: counts)
    }

    /// llama.cpp's `general.file_type` (`LlamaFileType`) for the matrices' types.
    static func fileType(_ plans: [GGUFTensorPlan]) -> Int {
        let types = Set(plans.filter { $0.dimensions.count > 1 }.map(\.type))
        if types.contains(.q4_0) { return 2 }
        if types.contains(.q8_0) { return 7 }
        if types.contains(.bf16) { return 32 }
        if types.contains(.f16) { return 1 }
        return 0
    }

    /// The GGUF tensors of `source`, in model order (experts stacked at their layer).
    static func tensorPlans(_ source: WeightSource, config: ModelConfig) throws -> [GGUFTensorPlan] {
        var plans: [GGUFTensorPlan] = []
        for (name, shape) in config.expectedTensorShapes() {
            guard let info = source.tensorInfo(name) else { throw WeightSourceError.missingTensor(source: "source", tensor: name) }
            guard info.shape == shape else {
                throw GGUFError(path: "source", subject: name, "has shape \(info.shape); config.json implies \(shape)")
            }
            let role = TensorRole.classify(name: name, shape: shape)
            switch GGUFNames.ggufName(forHF: name) {
            case let .expert(stacked, _, expert):
                guard expert == 0 else { continue }
                let experts = config.routedExpertCount
                let names = (0..<experts).map { name.replacingOccurrences(of: ".experts.0.", with: ".experts.\($0).") }
                let types = Set(names.compactMap { source.tensorInfo($0)?.type })
                let type = types.count == 1 ? ggmlType(types.first!, columns: shape[1]) : .f32
                plans.append(GGUFTensorPlan(name: stacked, dimensions: [shape[1], shape[0], experts], type: type) {
                    var bytes: [UInt8] = []
                    for expertName in names { bytes += try ggmlBytes(try source.tensor(expertName), as: type) }
                    return bytes
                })
            case let .tensor(ggufName) where name.hasSuffix("kv_b_proj.weight"):
                plans += kvBPlans(source, name: name, ggufName: ggufName, type: info.type, config: config)
            case let .tensor(ggufName):
                let type = role == .norm || role == .router ? .f32 : ggmlType(info.type, columns: shape.last!)
                plans.append(GGUFTensorPlan(name: ggufName, dimensions: shape.reversed(), type: type) {
                    try ggmlBytes(try source.tensor(name), as: type)
                })
            }
        }
        return plans
    }

    /// The ggml type a dsv2 matrix is written as (quantized rows must be whole blocks).
    static func ggmlType(_ type: WeightType, columns: Int) -> GGMLType {
        type.isQuantized && columns % 32 != 0 ? .f32 : GGMLBlocks.ggmlType(type)
    }

    /// A tensor's bytes as ggml `type`: the same bytes (float types), the blocks interleaved
    /// (q8/q4 → Q8_0/Q4_0), or exact F32 values.
    static func ggmlBytes(_ tensor: StoredTensor, as type: GGMLType) throws -> [UInt8] {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        let base = tensor.bytes.baseAddress!
        if GGMLBlocks.ggmlType(tensor.type) == type {
            if tensor.type.isQuantized {
                return [UInt8](unsafeUninitializedCapacity: rows * columns / 32 * type.bytesPerBlock) { buffer, count in
                    GGMLBlocks.fromPlanes(base, type: tensor.type, rows: rows, columns: columns, into: buffer.baseAddress!)
                    count = buffer.count
                }
            }
            return Array(tensor.bytes)
        }
        precondition(type == .f32, "GGUFExporter: \(tensor.type) cannot be written as \(type)")
        return floatBytes(values(tensor))
    }

    /// A tensor's values as f32, exactly (`ScalarQuantization.dequantize`: no flush, no rounding).
    static func values(_ tensor: StoredTensor) -> [Float] {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        return [Float](unsafeUninitializedCapacity: rows * columns) { buffer, count in
            ScalarQuantization.dequantize(tensor.bytes.baseAddress!, rows: rows, columns: columns, as: tensor.type,
                                          into: buffer.baseAddress!)
            count = rows * columns
        }
    }

    static func floatBytes(_ values: [Float]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// attn_k_b and attn_v_b from kv_b_proj (see the type notes on `GGUFExporter`).
    static func kvBPlans(_ source: WeightSource, name: String, ggufName: String, type: WeightType,
                         config: ModelConfig) -> [GGUFTensorPlan] {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, vDim = config.vHeadDim
        let rank = config.kvLoraRank, rowsPerHead = nope + vDim
        let kName = ggufName.replacingOccurrences(of: "attn_kv_b", with: "attn_k_b")
        let vName = ggufName.replacingOccurrences(of: "attn_kv_b", with: "attn_v_b")
        let vType = ggmlType(type, columns: rank)
        let kType: GGMLType = type.isQuantized ? .f32 : GGMLBlocks.ggmlType(type)
        let kPlan = GGUFTensorPlan(name: kName, dimensions: [nope, rank, heads], type: kType) {
            let tensor = try source.tensor(name)
            if !type.isQuantized {
                // Move whole elements: [heads, rank, nope] from [heads·(nope + v), rank].
                let size = type.bytesPerElement, base = tensor.bytes.baseAddress!
                return [UInt8](unsafeUninitializedCapacity: heads * rank * nope * size) { buffer, count in
                    let out = UnsafeMutableRawPointer(buffer.baseAddress!)
                    for h in 0..<heads {
                        for c in 0..<rank {
                            for i in 0..<nope {
                                (out + ((h * rank + c) * nope + i) * size)
                                    .copyMemory(from: base + ((h * rowsPerHead + i) * rank + c) * size, byteCount: size)
                            }
                        }
                    }
                    count = buffer.count
                }
            }
            let all = values(tensor)
            var k = [Float](repeating: 0, count: heads * rank * nope)
            for h in 0..<heads {
                for c in 0..<rank {
                    for i in 0..<nope { k[(h * rank + c) * nope + i] = all[(h * rowsPerHead + i) * rank + c] }
                }
            }
            return floatBytes(k)
        }
        let vPlan = GGUFTensorPlan(name: vName, dimensions: [rank, vDim, heads], type: vType) {
            let tensor = try source.tensor(name)
            let rowBytes = vType.bytesPerBlock * rank / vType.blockSize
            let whole = try ggmlBytes(tensor, as: vType)   // [heads·(nope + v), rank] rows in ggml layout
            var bytes: [UInt8] = []
            bytes.reserveCapacity(heads * vDim * rowBytes)
            for h in 0..<heads {
                let first = (h * rowsPerHead + nope) * rowBytes
                bytes += whole[first..<(first + vDim * rowBytes)]
            }
            return bytes
        }
        return [kPlan, vPlan]
    }
}
