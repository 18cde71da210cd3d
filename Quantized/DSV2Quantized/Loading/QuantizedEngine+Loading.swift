import Foundation
import DSV2Core
import DSV2Formats
import DSV2Kernels

/// Errors of choosing how to load a model, naming the value at fault.
public enum EngineOptionError: Error, CustomStringConvertible, Equatable {
    case unknownPreset(String)

    public var description: String {
        switch self {
        case let .unknownPreset(name):
            return "unknown quantization preset \"\(name)\" (presets: \(QuantizationPolicy.presetNames.joined(separator: ", ")))"
        }
    }
}

extension QuantizedEngine {
    /// Loads a Hugging Face checkpoint folder, quantizing each tensor with `policy` as it is
    /// loaded (`QuantizingSource` over the mapped safetensors): one tensor's floats at a time,
    /// never the whole fp32 model. Bit-identical to converting with the same policy and loading
    /// the container.
    public convenience init(checkpoint folder: URL, policy: QuantizationPolicy,
                            threads: Int = WorkerPool.defaultThreadCount, kvCacheType: KVCacheType = .f16) throws {
        let source = QuantizingSource(try HFCheckpointSource(folder: folder), policy: policy)
        try self.init(source: source, threads: threads, kvCacheType: kvCacheType)
    }

    /// `init(checkpoint:policy:…)` with a preset by name (`q8`, `q4`, `q4-mixed`, `f16`, `bf16`, `f32`).
    public convenience init(checkpoint folder: URL, preset: String,
                            threads: Int = WorkerPool.defaultThreadCount, kvCacheType: KVCacheType = .f16) throws {
        guard let policy = QuantizationPolicy.preset(preset) else { throw EngineOptionError.unknownPreset(preset) }
        try self.init(checkpoint: folder, policy: policy, threads: threads, kvCacheType: kvCacheType)
    }
}
