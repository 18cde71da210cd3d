import Foundation
import DSV2Core
import DSV2Formats
import DSV2Container

/// What a synthetic checkpoint write produced.
public struct SynthSummary: Sendable {
    /// File names written (inside the folder for a HF checkpoint; the container's own name).
    public var files: [String]
    public var outputBytes: Int
    public var seconds: Double
}

/// Synthetic checkpoints with the real tensor names and shapes and seeded random weights
/// (`dsv2 synth`): as a Hugging Face folder (bf16 shards) or directly as a `.dsv2` container
/// quantized by a preset. Same seed, same config → same bytes, whatever the thread count.
///
/// Both outputs describe the same model: the container holds exactly what `dsv2 convert` makes
/// of the HF folder (the bf16 values go through the same `TensorConversion`).
public enum Synthesizer {
    /// Writes the HF folder `destination` (see `SynthHFWriter`).
    @discardableResult
    public static func writeHuggingFace(_ spec: SynthModelSpec, seed: UInt64, to destination: URL,
                                        shardBytes: Int = SynthHFWriter.defaultShardBytes,
                                        threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                        overwrite: Bool = false,
                                        progress: ((ConversionProgress) -> Void)? = nil) throws -> SynthSummary {
        let source = try SyntheticWeightSource(spec: spec, seed: seed, threadsPerTensor: threads)
        return try SynthHFWriter.write(source, to: destination, shardBytes: shardBytes, overwrite: overwrite, progress: progress)
    }

    /// Writes the container `destination`, each tensor generated, converted by `policy` and
    /// appended by the converter's pipeline (`threads` tensors in flight).
    @discardableResult
    public static func writeContainer(_ spec: SynthModelSpec, seed: UInt64, to destination: URL,
                                      policy: QuantizationPolicy, compression: CompressionOptions = .none,
                                      threads: Int = ProcessInfo.processInfo.activeProcessorCount,
                                      overwrite: Bool = false,
                                      progress: ((ConversionProgress) -> Void)? = nil) throws -> SynthSummary {
        if FileManager.default.fileExists(atPath: destination.path), !overwrite { throw SynthError.outputExists(path: destination.path) }
        let source = try SyntheticWeightSource(spec: spec, seed: seed, threadsPerTensor: 1)
        let provenance = ContainerProvenance(sourceFormat: "synthetic", sourceName: "\(spec.name) seed \(seed)", files: [])
        let options = ConversionOptions(policy: policy, compression: compression, threads: threads, overwrite: overwrite)
        let summary = try Converter.convert(source: source, provenance: provenance, to: destination,
                                            options: options, progress: progress)
        return SynthSummary(files: [destination.lastPathComponent], outputBytes: summary.outputBytes, seconds: summary.seconds)
    }
}
