import DSV2Core
import DSV2Formats
import Foundation

/// A DeepSeek-V2 GGUF file as a `WeightSource`: tensors under their Hugging Face names and
/// shapes, config and tokenizer synthesised from the metadata (`GGUFModelMetadata`,
/// `GGUFTokenizerFiles`).
///
/// Types: F32 / F16 / BF16 tensors are handed out as stored (zero-copy when the mapping is
/// 64-byte aligned); Q8_0 and Q4_0 become dsv2's q8 / q4 with the same blocks (the scales moved
/// to their own plane: identical values); every other readable type is dequantized exactly to
/// f32 (`GGMLBlocks`). (ggml's and gguf-py's Q8_0 quantizers never write the code −128; should a
/// file hold it, the q8 kernels still multiply it exactly: |−128| = 128 as an unsigned byte, and
/// 2·128·127 fits vpmaddubsw's 16-bit pair sums.)
///
/// Layout: stacked experts (`ffn_*_exps`) are sliced per expert, per-expert tensors
/// (`ffn_*.E`) are read as they are; `kv_b_proj` is the unsplit `attn_kv_b`, or is rebuilt from
/// the split `attn_k_b` (per head, transposed) and `attn_v_b`. The rebuilt tensor keeps v_b's
/// q8/q4 type when the k rows' values can be written exactly in that type along kv_lora_rank (as
/// in dsv2's own exports, whose k_b holds dequantized q4/q8 values); otherwise it is exact f32.
/// A missing `output.weight` means lm_head is tied to the embedding.
///
/// `init` checks every expected tensor's presence and shape against the config before any data
/// is read, and refuses tensors the config does not expect; errors name the tensor.
public final class GGUFSource: WeightSource, @unchecked Sendable {
    public let file: GGUFFile
    public let config: ModelConfig
    public let configJSON: Data
    public let tokenizerFiles: [String: Data]
    public let tensorNames: [String]
    private let recipes: [String: Recipe]
    private let shapes: [String: [Int]]
    /// The type each split kv_b_proj is rebuilt as (found by rebuilding it once; see `tensorInfo`).
    private var rebuiltTypes: [String: WeightType] = [:]
    private let rebuiltTypesLock = NSLock()

    /// Where an HF tensor's values come from.
    enum Recipe {
        /// A whole GGUF tensor (its PyTorch shape is the HF shape, or the same elements).
        case whole(GGUFTensorInfo)
        /// Expert `expert` of a stacked [experts, rows, columns] tensor.
        case expert(GGUFTensorInfo, expert: Int)
        /// kv_b_proj rebuilt from attn_k_b [heads, rank, nope] and attn_v_b [heads, v, rank].
        case splitKVB(k: GGUFTensorInfo, v: GGUFTensorInfo)
    }

    public var location: String { file.path }

    public convenience init(path: String) throws {
        try self.init(file: try GGUFFile(path: path))
    }

    public init(file: GGUFFile) throws {
        self.file = file
        config = try GGUFModelMetadata.modelConfig(file)
        configJSON = try Self.encode(config)
        tokenizerFiles = try GGUFTokenizerFiles.tokenizerFiles(file)

        func fail(_ tensor: String, _ message: String) -> GGUFError { GGUFError(path: file.path, subject: tensor, message) }
        var used = Set<String>()
        func tensor(_ name: String) -> GGUFTensorInfo? {
            guard let info = file.tensor(name) else { return nil }
            used.insert(name)
            return info
        }
        func readable(_ info: GGUFTensorInfo) throws -> GGUFTensorInfo {
            guard info.type.isReadable else {
                throw fail(info.name, "has ggml type \(info.type), which dsv2 cannot read (readable: \(GGMLType.allCases.filter(\.isReadable).map(\.description).joined(separator: ", ")))")
            }
            return info
        }
        func whole(_ gguf: String, _ hf: String, _ shape: [Int]) throws -> Recipe {
            guard let info = tensor(gguf) else { throw fail(gguf, "is missing (needed for \(hf) \(shape) by the metadata)") }
            guard info.shape == shape || (info.elementCount == shape.reduce(1, *) && info.dimensions[0] == shape.last!) else {
                throw fail(gguf, "has shape \(info.shape) (ggml ne \(info.dimensions)); the metadata implies \(shape) for \(hf)")
            }
            return .whole(try readable(info))
        }

        var recipes: [String: Recipe] = [:]
        let expected = config.expectedTensorShapes()
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, vDim = config.vHeadDim, rank = config.kvLoraRank
        for (name, shape) in expected {
            let gguf = GGUFNames.ggufName(forHF: name)
            switch gguf {
            case let .tensor(ggufName):
                if name.hasSuffix("kv_b_proj.weight"), file.tensor(ggufName) == nil,
                   let k = file.tensor(ggufName.replacingOccurrences(of: "attn_kv_b", with: "attn_k_b")),
                   let v = file.tensor(ggufName.replacingOccurrences(of: "attn_kv_b", with: "attn_v_b")) {
                    used.insert(k.name)
                    used.insert(v.name)
                    guard k.dimensions.first == nope, k.elementCount == heads * rank * nope else {
                        throw fail(k.name, "has ggml ne \(k.dimensions); the metadata implies [\(nope), \(rank), \(heads)] (qk_nope, kv_lora_rank, heads)")
                    }
                    guard v.dimensions.first == rank, v.elementCount == heads * vDim * rank else {
                        throw fail(v.name, "has ggml ne \(v.dimensions); the metadata implies [\(rank), \(vDim), \(heads)] (kv_lora_rank, v_head, heads)")
                    }
                    recipes[name] = .splitKVB(k: try readable(k), v: try readable(v))
                } else {
                    recipes[name] = try whole(ggufName, name, shape)
                }
            case let .expert(stacked, single, expert):
                if let info = tensor(stacked) {
                    let rows = shape[0], columns = shape[1], experts = config.routedExpertCount
                    guard info.dimensions == [columns, rows, experts] else {
                        throw fail(stacked, "has ggml ne \(info.dimensions); the metadata implies [\(columns), \(rows), \(experts)] (columns, rows, experts)")
                    }
                    recipes[name] = .expert(try readable(info), expert: expert)
                } else if file.tensor(single) != nil {
                    recipes[name] = try whole(single, name, shape)
                } else {
                    throw fail(stacked, "is missing (nor is there a per-expert \(single)); needed for \(name) by the metadata")
                }
            }
        }
        if let extra = file.tensors.first(where: { !used.contains($0.name) }) {
            throw fail(extra.name, "is not expected by the metadata (\(GGUFNames.hint(extra.name)))")
        }
        self.recipes = recipes
        shapes = Dictionary(expected.map { ($0.name, $0.shape) }, uniquingKeysWith: { a, _ in a })
        tensorNames = expected.map(\.name)
    }

    static func encode(_ config: ModelConfig) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        return try encoder.encode(config)
    }

    /// The dsv2 type a tensor of ggml type `type` is handed out as.
    static func weightType(_ type: GGMLType) -> WeightType {
        switch type {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8_0: return .q8
        case .q4_0: return .q4
        default: return .f32
        }
    }

    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        guard let recipe = recipes[name], let shape = shapes[name] else { return nil }
        switch recipe {
        case let .whole(info), let .expert(info, _): return (Self.weightType(info.type), shape)
        case let .splitKVB(k, v):
            let vType = Self.weightType(v.type)
            if vType.isQuantized { return (rebuiltType(name, k: k, v: v), shape) }
            return (vType == Self.weightType(k.type) ? vType : .f32, shape)
        }
    }

    /// q8/q4 when the k rows are exactly representable in v_b's type, else f32: known only from
    /// the values, so the tensor is rebuilt once (it is small: heads·(nope + v)·rank values).
    func rebuiltType(_ name: String, k: GGUFTensorInfo, v: GGUFTensorInfo) -> WeightType {
        rebuiltTypesLock.lock()
        if let type = rebuiltTypes[name] { rebuiltTypesLock.unlock(); return type }
        rebuiltTypesLock.unlock()
        let type = (try? rebuildKVB(k: k, v: v, name: name, shape: shapes[name] ?? []).type) ?? .f32
        rebuiltTypesLock.lock()
        rebuiltTypes[name] = type
        rebuiltTypesLock.unlock()
        return type
    }

    /// The tensor under its Hugging Face name; a NaN or infinity is an error naming it, as in a
    /// container or a checkpoint (the engines run these bytes as they are; for q8/q4 the block scales are checked).
    public func tensor(_ name: String) throws -> StoredTensor {
        let tensor = try storedTensor(name)
        if let (row, column) = tensor.firstNonFinite() {
            throw TensorConversionError.located(file: file.path, .nonFinite(tensor: name, row: row, column: column))
        }
        return tensor
    }

    private func storedTensor(_ name: String) throws -> StoredTensor {
        guard let recipe = recipes[name], let shape = shapes[name] else {
            throw WeightSourceError.missingTensor(source: file.path, tensor: name)
        }
        let (rows, columns) = StoredTensor.rowsAndColumns(shape)
        switch recipe {
        case let .whole(info):
            return try convert(file.bytes(of: info), type: info.type, name: name, shape: shape, rows: rows, columns: columns)
        case let .expert(info, expert):
            let bytesPerExpert = info.byteCount / config.routedExpertCount
            let all = file.bytes(of: info)
            let slice = UnsafeRawBufferPointer(rebasing: all[(expert * bytesPerExpert)..<((expert + 1) * bytesPerExpert)])
            return try convert(slice, type: info.type, name: name, shape: shape, rows: rows, columns: columns)
        case let .splitKVB(k, v):
            return try rebuildKVB(k: k, v: v, name: name, shape: shape)
        }
    }

    /// One tensor's ggml bytes as a dsv2 tensor (see the type rules above).
    func convert(_ bytes: UnsafeRawBufferPointer, type: GGMLType, name: String, shape: [Int],
                 rows: Int, columns: Int) throws -> StoredTensor {
        let target = Self.weightType(type)
        if !target.isQuantized, type == .f32 || type == .f16 || type == .bf16 {
            if let base = bytes.baseAddress, Int(bitPattern: base) % 64 == 0 {
                return StoredTensor(name: name, type: target, shape: shape, bytes: bytes, owner: file.owner)
            }
            let copy = AlignedBuffer(byteCount: bytes.count)
            if let base = bytes.baseAddress { copy.pointer.copyMemory(from: base, byteCount: bytes.count) }
            return StoredTensor(name: name, type: target, shape: shape, bytes: copy.bytes, owner: copy)
        }
        if target.isQuantized {
            let output = AlignedBuffer(byteCount: target.byteCount(rows: rows, columns: columns))
            GGMLBlocks.toPlanes(bytes, type: target, rows: rows, columns: columns, into: output.pointer)
            return StoredTensor(name: name, type: target, shape: shape, bytes: output.bytes, owner: output)
        }
        let output = AlignedBuffer(byteCount: rows * columns * 4)
        GGMLBlocks.dequantize(bytes, type: type, count: rows * columns,
                              into: output.pointer.assumingMemoryBound(to: Float.self))
        return StoredTensor(name: name, type: .f32, shape: shape, bytes: output.bytes, owner: output)
    }

    /// kv_b_proj [heads·(nope + v), rank] from attn_k_b (per head [rank, nope], the transpose of
    /// the head's k rows) and attn_v_b (per head [v, rank], the head's v rows as they are).
    func rebuildKVB(k: GGUFTensorInfo, v: GGUFTensorInfo, name: String, shape: [Int]) throws -> StoredTensor {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, vDim = config.vHeadDim
        let rank = config.kvLoraRank, rowsPerHead = nope + vDim, rows = heads * rowsPerHead
        let kValues = try GGMLBlocks.dequantize(file.bytes(of: k), type: k.type, count: k.elementCount)
        // The head's k rows, [nope, rank], of head h.
        func kRow(_ h: Int, _ i: Int, into row: UnsafeMutablePointer<Float>) {
            for c in 0..<rank { row[c] = kValues[(h * rank + c) * nope + i] }
        }
        let vType = Self.weightType(v.type)
        if vType.isQuantized {
            // v rows: v_b's blocks; k rows: written exactly in the same type, when possible.
            let vPlanes = AlignedBuffer(byteCount: vType.byteCount(rows: heads * vDim, columns: rank))
            GGMLBlocks.toPlanes(file.bytes(of: v), type: vType, rows: heads * vDim, columns: rank, into: vPlanes.pointer)
            let output = AlignedBuffer(byteCount: vType.byteCount(rows: rows, columns: rank))
            let blocks = rank / 32, quantBytes = vType.quantBytesPerBlock
            let quants = output.pointer.assumingMemoryBound(to: UInt8.self)
            let scales = (output.pointer + vType.scalesOffset(rows: rows, columns: rank)).assumingMemoryBound(to: UInt16.self)
            let vQuants = vPlanes.pointer.assumingMemoryBound(to: UInt8.self)
            let vScales = (vPlanes.pointer + vType.scalesOffset(rows: heads * vDim, columns: rank)).assumingMemoryBound(to: UInt16.self)
            var exact = true
            var row = [Float](repeating: 0, count: rank)
            outer: for h in 0..<heads where exact {
                for i in 0..<nope {
                    row.withUnsafeMutableBufferPointer { kRow(h, i, into: $0.baseAddress!) }
                    let r = h * rowsPerHead + i
                    for b in 0..<blocks {
                        guard let scale = ExactBlocks.encode(row, from: b * 32, as: vType, into: quants + (r * blocks + b) * quantBytes) else {
                            exact = false
                            continue outer
                        }
                        scales[r * blocks + b] = scale
                    }
                }
                for j in 0..<vDim {
                    let r = h * rowsPerHead + nope + j, source = h * vDim + j
                    (quants + r * blocks * quantBytes).update(from: vQuants + source * blocks * quantBytes, count: blocks * quantBytes)
                    (scales + r * blocks).update(from: vScales + source * blocks, count: blocks)
                }
            }
            if exact { return StoredTensor(name: name, type: vType, shape: shape, bytes: output.bytes, owner: output) }
        } else if Self.weightType(k.type) == vType {
            // Float types: the transposition moves whole elements, so the type is kept.
            let size = vType.bytesPerElement
            let output = AlignedBuffer(byteCount: rows * rank * size)
            let kBytes = file.bytes(of: k).baseAddress!, vBytes = file.bytes(of: v).baseAddress!
            for h in 0..<heads {
                for i in 0..<nope {
                    for c in 0..<rank {
                        (output.pointer + ((h * rowsPerHead + i) * rank + c) * size)
                            .copyMemory(from: kBytes + ((h * rank + c) * nope + i) * size, byteCount: size)
                    }
                }
                (output.pointer + (h * rowsPerHead + nope) * rank * size)
                    .copyMemory(from: vBytes + h * vDim * rank * size, byteCount: vDim * rank * size)
            }
            return StoredTensor(name: name, type: vType, shape: shape, bytes: output.bytes, owner: output)
        }
        // Exact f32 of every value.
        let vValues = try GGMLBlocks.dequantize(file.bytes(of: v), type: v.type, count: v.elementCount)
        let output = AlignedBuffer(byteCount: rows * rank * 4)
        let out = output.pointer.assumingMemoryBound(to: Float.self)
        for h in 0..<heads {
            for i in 0..<nope { kRow(h, i, into: out + (h * rowsPerHead + i) * rank) }
            for j in 0..<vDim {
                for c in 0..<rank { out[(h * rowsPerHead + nope + j) * rank + c] = vValues[(h * vDim + j) * rank + c] }
            }
        }
        return StoredTensor(name: name, type: .f32, shape: shape, bytes: output.bytes, owner: output)
    }
}

/// Writing values that are already exactly representable as one q8/q4 block.
enum ExactBlocks {
    /// Encodes the 32 values `x[start..<start+32]` as a q8/q4 block whose dequantized values
    /// (`d · code`, `ScalarQuantization.dequantize`) are bit-identical to them, if one exists:
    /// the f16 scale's bits, with the codes written to `quants`; nil otherwise. The scale is
    /// searched from the largest magnitude m: d = f16(m / k) for every code k of the type.
    static func encode(_ x: [Float], from start: Int, as type: WeightType, into quants: UnsafeMutablePointer<UInt8>) -> UInt16? {
        var m: Float = 0
        for j in 0..<32 where abs(x[start + j]) > abs(m) { m = x[start + j] }
        let codes: [Int] = type == .q8 ? Array((1...127).reversed()).flatMap { [$0, -$0] }
                                       : [-8] + Array((1...7).reversed()).flatMap { [$0, -$0] }
        let candidates: [Float16] = m == 0 ? [0, -0.0] : codes.map { Float16(m / Float($0)) }
        let lowest = type == .q8 ? -127 : -8, highest = type == .q8 ? 127 : 7
        candidate: for d in candidates where d.isFinite {
            let scale = Float(d)
            var block = [Int](repeating: 0, count: 32)
            for j in 0..<32 {
                let value = x[start + j]
                let code: Int
                if scale == 0 {
                    guard value == 0 else { continue candidate }
                    code = value.sign == d.sign ? 0 : -1   // ±0 · 0 keeps the scale's sign, · −1 flips it
                } else {
                    let rounded = (value / scale).rounded()
                    guard rounded >= Float(lowest), rounded <= Float(highest) else { continue candidate }
                    code = Int(rounded)
                }
                guard (scale * Float(code)).bitPattern == value.bitPattern else { continue candidate }
                block[j] = code
            }
            if type == .q8 {
                for j in 0..<32 { quants[j] = UInt8(bitPattern: Int8(block[j])) }
            } else {
                for j in 0..<16 { quants[j] = UInt8(block[j] + 8) | UInt8(block[j + 16] + 8) << 4 }
            }
            return d.bitPattern
        }
        return nil
    }
}
