import Foundation
import DSV2Core
import DSV2Formats
import DSV2Container

/// How large each synthetic weight is, chosen so a forward pass behaves like a trained model's in
/// the ways a benchmark and the engines' checks care about: finite activations over 60 layers
/// and routers that spread tokens over many experts.
///
/// - 1-D tensors (RMSNorm weights): 1, as initialised by the original code.
/// - Embedding: N(0, 1), so the residual stream starts at RMS 1.
/// - Projections reading a normalised or O(1) vector: N(0, 1/fan_in) (fan_in = the last axis), so
///   their outputs are O(1): router logits have unit spread (the softmax spreads tokens over many
///   experts), lm_head logits too.
/// - Projections writing into the residual stream (`o_proj`, every `down_proj`): additionally
///   divided by √(2·num_hidden_layers) (the GPT-2 residual scaling), so the 2·L additions keep
///   the residual at RMS ≈ √2 instead of growing with depth.
public enum SynthWeightScale {
    public static func standardDeviation(name: String, shape: [Int], config: ModelConfig) -> Float {
        guard shape.count >= 2, let fanIn = shape.last, fanIn > 0 else { return 1 }
        if name == CheckpointNames.embedTokens { return 1 }
        let base = 1 / Float(fanIn).squareRoot()
        let writesResidual = name.hasSuffix(".self_attn.o_proj.weight") || name.hasSuffix(".down_proj.weight")
        return writesResidual ? base / Float(2 * config.numHiddenLayers).squareRoot() : base
    }
}

/// A synthetic checkpoint as a `WeightSource`: every tensor the config expects, in model order,
/// as bf16 generated on demand from (seed, name). Nothing is kept: `tensor(_:)` allocates and
/// fills a fresh buffer, so a converter streaming tensor by tensor holds only the tensors in
/// flight.
public final class SyntheticWeightSource: WeightSource, @unchecked Sendable {
    public let spec: SynthModelSpec
    public let seed: UInt64
    /// Threads filling one tensor (chunks of rows; the bytes do not depend on it).
    public let threadsPerTensor: Int
    public let tensorNames: [String]
    private let shapes: [String: [Int]]

    public init(spec: SynthModelSpec, seed: UInt64, threadsPerTensor: Int = 1) throws {
        self.spec = spec
        self.seed = seed
        self.threadsPerTensor = max(1, threadsPerTensor)
        let expected = spec.config.expectedTensorShapes()
        for (name, shape) in expected where shape.reduce(1, *) > SynthRandom.maxElements {
            throw SynthError.tensorTooLarge(tensor: name, elements: shape.reduce(1, *))
        }
        tensorNames = expected.map(\.name)
        shapes = Dictionary(expected.map { ($0.name, $0.shape) }, uniquingKeysWith: { first, _ in first })
    }

    public var config: ModelConfig { spec.config }
    public var configJSON: Data { spec.configJSON }
    /// Synthetic models have no tokenizer: benchmarks feed token ids.
    public var tokenizerFiles: [String: Data] { [:] }

    public func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? {
        shapes[name].map { (.bf16, $0) }
    }

    /// Total bytes of the bf16 checkpoint.
    public var totalBytes: Int { shapes.values.reduce(0) { $0 + $1.reduce(1, *) * 2 } }

    public func tensor(_ name: String) throws -> StoredTensor {
        guard let shape = shapes[name] else { throw WeightSourceError.missingTensor(source: "synthetic \(spec.name)", tensor: name) }
        let count = shape.reduce(1, *)
        let buffer = AlignedBuffer(byteCount: count * 2)
        fill(name: name, shape: shape, into: buffer.pointer.assumingMemoryBound(to: UInt16.self))
        return StoredTensor(name: name, type: .bf16, shape: shape, bytes: buffer.bytes, owner: buffer)
    }

    /// Writes tensor `name`'s bf16 values to `out` (`shape` element count).
    func fill(name: String, shape: [Int], into out: UnsafeMutablePointer<UInt16>) {
        let count = shape.reduce(1, *)
        if shape.count <= 1 {
            // Norm weights: exactly 1.0 (bf16 0x3F80).
            out.initialize(repeating: 0x3F80, count: count)
            return
        }
        let std = SynthWeightScale.standardDeviation(name: name, shape: shape, config: spec.config)
        let random = SynthRandom(seed: seed, name: name)
        let chunk = 1 << 20   // elements per task (2 MiB of bf16)
        let chunks = (count + chunk - 1) / chunk
        let work = { (c: Int) in
            random.fillBF16(out, range: c * chunk ..< min(count, (c + 1) * chunk), std: std)
        }
        if threadsPerTensor > 1, chunks > 1 {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: work)
        } else {
            for c in 0..<chunks { work(c) }
        }
    }
}

public enum SynthError: Error, CustomStringConvertible, Equatable {
    case tensorTooLarge(tensor: String, elements: Int)
    case outputExists(path: String)
    case cannotWrite(path: String, reason: String)
    case badShardSize(Int)

    public var description: String {
        switch self {
        case let .tensorTooLarge(tensor, elements):
            return "\(tensor): \(elements) elements is more than a synthetic stream holds (\(SynthRandom.maxElements))"
        case let .outputExists(path):
            return "\(path) exists (use --force to replace it)"
        case let .cannotWrite(path, reason):
            return "cannot write \(path): \(reason)"
        case let .badShardSize(size):
            return "shard size must be positive, got \(size)"
        }
    }
}
