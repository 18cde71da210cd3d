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

/// All weights of a model for the reference: projections as `Matrix` (fp32 or mapped), norms as
/// [Float]. Field names and the loading walk are DSV2Core's `ModelWeights`.
public typealias ReferenceWeights = ModelWeights<Matrix, [Float], Matrix>

extension ReferenceWeights {
    /// Loads every tensor of `config` from `checkpoint`: widened to fp32 in memory, or (`.mapped`)
    /// matrices left in the mapped checkpoint and widened at use; norm vectors are always widened.
    /// A missing, unexpected or misshapen tensor, or a NaN or infinite weight, is an error naming
    /// it (the mapped form reads every weight once at load for that check).
    public init(checkpoint: SafetensorsCheckpoint, config: ModelConfig, storage: WeightStorage = .fp32) throws {
        // Check all shapes before loading anything, so a bad checkpoint fails fast.
        try checkpoint.validate(against: config)
        let fp32Bytes = UInt64(config.parameterCount) * 4
        if storage == .fp32, fp32Bytes > ProcessInfo.processInfo.physicalMemory {
            throw WeightStorageError.exceedsMemory(checkpoint: checkpoint.url.path, neededBytes: fp32Bytes,
                                                   physicalBytes: ProcessInfo.processInfo.physicalMemory)
        }
        self = try .load(config: config,
            matrix: { name, shape in
                switch storage {
                case .fp32:
                    return Matrix(rows: shape[0], columns: shape[1], values: try checkpoint.finiteFloats(name, shape: shape))
                case .mapped:
                    let info = try checkpoint.info(name)
                    guard info.dtype.isFloatingPoint else {
                        throw SafetensorsError.unsupportedDType(tensor: name, file: info.file.path, dtype: info.dtype.rawValue, wanted: "fp32")
                    }
                    try checkpoint.checkFinite(name)
                    return Matrix(rows: shape[0], columns: shape[1], mapped: try checkpoint.rawBytes(name), dtype: info.dtype, owner: checkpoint)
                }
            },
            vector: { name, shape in try checkpoint.finiteFloats(name, shape: shape) })
    }

    /// Random weights for benchmarks and tests, reproducible from `seed`.
    ///
    /// Projections are uniform with variance 1/inFeatures (so activations stay O(1) through the
    /// layers and router logits are O(1), which spreads the routing); norm weights are 1; the
    /// embedding has unit variance. Drawn from one stream in `ModelWeights.load` order.
    public static func random(config: ModelConfig, seed: UInt64) -> ReferenceWeights {
        var generator = SplitMix64(seed: seed)
        func uniform(_ count: Int, bound: Float) -> [Float] {
            var local = generator  // a local copy keeps the state in registers in the hot loop
            defer { generator = local }
            return [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
                for i in 0..<count { buffer[i] = local.nextSignedUnitFloat() * bound }
                initialized = count
            }
        }
        // Uniform(−a, a) has variance a²/3.
        return .load(config: config,
            matrix: { name, shape in
                let bound = name == CheckpointNames.embedTokens ? Float(3).squareRoot() : (3 / Float(shape[1])).squareRoot()
                return Matrix(rows: shape[0], columns: shape[1], values: uniform(shape[0] * shape[1], bound: bound))
            },
            vector: { _, shape in [Float](repeating: 1, count: shape[0]) })
    }
}
