import Foundation
import DSV2

/// A loaded model ready to serve: the engine, its tokenizer and defaults, and the scheduler
/// running its sequences.
public final class ServerBackend: @unchecked Sendable {
    /// The id `/v1/models` lists and requests may name.
    public let modelName: String
    public let engine: QuantizedEngine
    public let tokenizer: Tokenizer
    let defaults: GenerationDefaults
    /// `system_fingerprint`: the engine and its quantization.
    let fingerprint: String
    let scheduler: BatchScheduler
    let contextLength: Int
    let created = Int(Date().timeIntervalSince1970)

    /// Builds the quantized engine over `model` and starts the scheduler. `tokenizer` replaces
    /// the model's own (a synthetic model has none).
    convenience init(model: Model, choice: EngineChoice, tokenizer: Tokenizer?, options: ServerOptions,
                     metrics: ServerMetrics) throws {
        guard case let .quantized(preset, threads, kvCache, allowRequantize) = choice else {
            throw ServerSetupError.needsQuantizedEngine
        }
        let engine = try model.makeQuantizedEngine(preset: preset, threads: threads, kvCache: kvCache, allowRequantize: allowRequantize)
        let tokenizer = try tokenizer ?? model.tokenizer()
        try self.init(engine: engine, tokenizer: tokenizer,
                      defaults: try GenerationDefaults(config: model.config, tokenizer: tokenizer,
                                                       generationConfigJSON: model.files["generation_config.json"]),
                      modelName: options.modelName ?? Self.defaultName(model.url),
                      fingerprint: "fp_dsv2_\(model.quantization(choice))", options: options, metrics: metrics)
    }

    /// - Parameter startScheduler: false leaves the jobs queued until `scheduler.start()` (tests).
    init(engine: QuantizedEngine, tokenizer: Tokenizer, defaults: GenerationDefaults, modelName: String, fingerprint: String,
         options: ServerOptions, metrics: ServerMetrics, startScheduler: Bool = true) throws {
        let maxPositions = engine.config.maxPositionEmbeddings
        let context = options.contextLength ?? maxPositions
        guard context >= 2, context <= maxPositions else {
            throw ServerSetupError.contextLength(requested: context, maxPositions: maxPositions)
        }
        self.engine = engine
        self.tokenizer = tokenizer
        self.defaults = defaults
        self.modelName = modelName
        self.fingerprint = fingerprint
        contextLength = context
        engine.prefillChunkTokens = options.prefillChunk
        scheduler = BatchScheduler(engine: engine, tokenizer: tokenizer,
                                   options: .init(parallel: options.parallel, maxQueue: options.maxQueue,
                                                  prefillChunk: options.prefillChunk, contextLength: context),
                                   metrics: metrics)
        if startScheduler { scheduler.start() }
    }

    /// The model file or folder name without `.dsv2`.
    static func defaultName(_ url: URL) -> String {
        url.pathExtension == "dsv2" ? url.deletingPathExtension().lastPathComponent : url.lastPathComponent
    }

    /// Ends the scheduler thread (queued and running requests fail).
    public func shutdown() { scheduler.stop() }
}

/// A model or option the server cannot run with.
public enum ServerSetupError: Error, CustomStringConvertible, Equatable {
    case needsQuantizedEngine
    case contextLength(requested: Int, maxPositions: Int)
    case option(String)

    public var description: String {
        switch self {
        case .needsQuantizedEngine:
            return "the server runs the quantized engine (continuous batching); the reference engine has no batched steps"
        case let .contextLength(requested, maxPositions):
            return "--ctx-size \(requested) is outside 2...\(maxPositions) (max_position_embeddings)"
        case let .option(message):
            return message
        }
    }
}
