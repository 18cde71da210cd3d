import Foundation
import DSV2Core
import DSV2Formats
import DSV2Kernels

/// Errors of building the engine from a `WeightSource`: each names the source
/// (`WeightSource.location`) and the tensor at fault.
public enum EngineLoadError: Error, CustomStringConvertible, Equatable {
    case missingTensor(source: String, tensor: String)
    case wrongShape(source: String, tensor: String, expected: [Int], found: [Int])
    case badTensorBytes(source: String, tensor: String, reason: String)
    case unexpectedTensor(source: String, tensor: String, reason: String)

    public var description: String {
        switch self {
        case let .missingTensor(source, tensor):
            return "\(source): tensor \(tensor) is missing from the model"
        case let .wrongShape(source, tensor, expected, found):
            return "\(source): tensor \(tensor) has shape \(found), the config expects \(expected)"
        case let .badTensorBytes(source, tensor, reason):
            return "\(source): tensor \(tensor): \(reason)"
        case let .unexpectedTensor(source, tensor, reason):
            return "\(source): tensor \(tensor) is not expected by config.json: \(reason)"
        }
    }
}

/// Builds `EngineWeights` from any `WeightSource` (a `.dsv2` container, a Hugging Face folder
/// raw or quantized in memory by `QuantizingSource`), one tensor at a time: the source hands out
/// each tensor in its stored type and the engine wraps those bytes as they are (no fp32 copy of
/// any quantized matrix is kept). Same stored types and bytes → bit-identical engines, however
/// the model was loaded.
///
/// The one load-time transformation: `kv_b_proj` [heads·(qk_nope + v_head), kv_lora_rank] is split
/// per head into W^UK_iᵀ [kv_lora_rank, qk_nope] and W^UV_i [v_head, kv_lora_rank] for the absorbed
/// MLA form (it is also kept as stored, for the expanded form of prefill). These small matrices (2 M values per layer for V2-Lite) are kept in **f32 when
/// kv_b_proj is stored as f32, otherwise f16**: their products meet every cached token's score
/// and the attention output, f16 adds ≤ 2^-11 relative per weight (10× below q8's rounding of the
/// same weight), and the activations they multiply stay f32 (not quantized to int8).
public enum EngineWeightLoader {
    public static func load(from source: WeightSource) throws -> EngineWeights {
        let config = try ModelConfig.decode(source.configJSON, file: source.location + " (config.json)")
        return try load(from: source, config: config)
    }

    public static func load(from source: WeightSource, config: ModelConfig) throws -> EngineWeights {
        // Check every name and shape before reading any data, so a mismatched model fails fast;
        // a tensor the config does not describe is an error, as for a Hugging Face folder.
        switch config.tensorTableMismatch(names: source.tensorNames, shape: { source.tensorInfo($0)?.shape }) {
        case nil: break
        case let .missing(tensor, _): throw EngineLoadError.missingTensor(source: source.location, tensor: tensor)
        case let .wrongShape(tensor, expected, found): throw EngineLoadError.wrongShape(source: source.location, tensor: tensor, expected: expected, found: found)
        case let .unexpected(tensor, reason): throw EngineLoadError.unexpectedTensor(source: source.location, tensor: tensor, reason: reason)
        }
        let expected = config.expectedTensorShapes()

        // Fetch (and, for a `QuantizingSource`, quantize) the tensors on every core: each is
        // converted alone, so memory beyond the result stays one chunk per thread.
        let fetched = try fetchAll(expected.map(\.name), from: source)
        func stored(_ name: String, _ shape: [Int]) throws -> StoredTensor {
            guard let tensor = fetched[name] else { throw EngineLoadError.missingTensor(source: source.location, tensor: name) }
            guard tensor.shape == shape else { throw EngineLoadError.wrongShape(source: source.location, tensor: name, expected: shape, found: tensor.shape) }
            return tensor
        }
        let weights = try ModelWeights<QuantizedMatrix, [Float], AbsorbedKVB>.load(config: config,
            matrix: { name, shape in try matrix(try stored(name, shape), source: source) },
            vector: { name, shape in try floats(try stored(name, shape), source: source) },
            kvBProj: { name, shape in try splitKVB(try stored(name, shape), config: config, source: source) })
        return EngineWeights(config: config, weights: weights)
    }

    /// The tensor's bytes as they are stored, as a matrix.
    static func matrix(_ tensor: StoredTensor, source: WeightSource) throws -> QuantizedMatrix {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        guard let base = tensor.bytes.baseAddress else {
            throw EngineLoadError.badTensorBytes(source: source.location, tensor: tensor.name, reason: "has no data")
        }
        do {
            return try QuantizedMatrix(type: tensor.type, rows: rows, columns: columns, data: base,
                                       byteCount: tensor.bytes.count, owner: tensor.owner, name: tensor.name)
        } catch {
            throw EngineLoadError.badTensorBytes(source: source.location, tensor: tensor.name, reason: "\(error)")
        }
    }

    /// `source.tensor(name)` for every name, in parallel (`WeightSource.tensor` is thread-safe);
    /// the first error wins.
    static func fetchAll(_ names: [String], from source: WeightSource) throws -> [String: StoredTensor] {
        let lock = NSLock()
        var results: [String: StoredTensor] = [:]
        var firstError: Error?
        let threads = max(1, ProcessInfo.processInfo.activeProcessorCount)
        // Largest first, so the expensive tensors do not end up last on one thread.
        let order = names.sorted { (source.tensorInfo($0)?.shape.reduce(1, *) ?? 0) > (source.tensorInfo($1)?.shape.reduce(1, *) ?? 0) }
        var next = 0
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while true {
                lock.lock()
                guard firstError == nil, next < order.count else { lock.unlock(); return }
                let name = order[next]
                next += 1
                lock.unlock()
                do {
                    let tensor = try source.tensor(name)
                    lock.lock(); results[name] = tensor; lock.unlock()
                } catch {
                    lock.lock(); if firstError == nil { firstError = error }; lock.unlock()
                }
            }
        }
        if let firstError { throw firstError }
        return results
    }

    /// A tensor's values widened to fp32 (norm vectors; kv_b_proj before its split).
    static func floats(_ tensor: StoredTensor, source: WeightSource) throws -> [Float] {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        guard tensor.bytes.count == tensor.type.byteCount(rows: rows, columns: columns), let base = tensor.bytes.baseAddress else {
            throw EngineLoadError.badTensorBytes(source: source.location, tensor: tensor.name,
                                                 reason: "\(tensor.type.rawValue) \(tensor.shape) needs \(tensor.type.byteCount(rows: rows, columns: columns)) bytes, got \(tensor.bytes.count)")
        }
        return [Float](unsafeUninitializedCapacity: rows * columns) { buffer, initialized in
            ScalarQuantization.dequantize(base, rows: rows, columns: columns, as: tensor.type, into: buffer.baseAddress!)
            initialized = rows * columns
        }
    }

    /// Splits kv_b_proj (head by head [W^UK_i (qk_nope rows); W^UV_i (v_head rows)], docs/NUMERICS.md
    /// item 5) into W^UKᵀ [heads·rank, nope] and W^UV [heads·vDim, rank].
    static func splitKVB(_ tensor: StoredTensor, config: ModelConfig, source: WeightSource) throws -> AbsorbedKVB {
        let heads = config.numAttentionHeads, nope = config.qkNopeHeadDim, vDim = config.vHeadDim
        let rank = config.kvLoraRank
        let values = try floats(tensor, source: source)  // [heads·(nope + vDim), rank]
        let type: WeightType = tensor.type == .f32 ? .f32 : .f16
        var transposedK = [Float](repeating: 0, count: heads * rank * nope)  // [heads·rank, nope]
        var valueUp = [Float](repeating: 0, count: heads * vDim * rank)     // [heads·vDim, rank]
        for h in 0..<heads {
            let head = h * (nope + vDim) * rank
            for i in 0..<nope {
                for r in 0..<rank { transposedK[(h * rank + r) * nope + i] = values[head + i * rank + r] }
            }
            for v in 0..<vDim {
                for r in 0..<rank { valueUp[(h * vDim + v) * rank + r] = values[head + (nope + v) * rank + r] }
            }
        }
        // qk_nope_head_dim may be 0 (no content key): keep a 1-column zero matrix so shapes stay valid.
        let wUKT = nope > 0
            ? QuantizedMatrix.quantize(transposedK, rows: heads * rank, columns: nope, as: type)
            : QuantizedMatrix.quantize([Float](repeating: 0, count: heads * rank), rows: heads * rank, columns: 1, as: type)
        let wUV = QuantizedMatrix.quantize(valueUp, rows: heads * vDim, columns: rank, as: type)
        return AbsorbedKVB(wUKT: wUKT, wUV: wUV, upProjection: try matrix(tensor, source: source))
    }
}
