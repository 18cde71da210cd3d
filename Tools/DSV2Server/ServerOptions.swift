import Foundation
import Logging

/// How `dsv2 serve` listens and schedules.
public struct ServerOptions: Sendable {
    /// Address to bind: loopback unless asked otherwise.
    public var host = "127.0.0.1"
    /// 0 = any free port (reported by `onListening`).
    public var port = 8080
    /// Sequences decoded together (slots, each with its own latent cache).
    public var parallel = 4
    /// Most tokens (prompt + generated) per sequence; nil = max_position_embeddings.
    public var contextLength: Int?
    /// When set, every /v1 request needs `Authorization: Bearer <apiKey>`.
    public var apiKey: String?
    /// Requests waiting for a slot beyond which new ones get 503.
    public var maxQueue = 64
    /// Largest request body accepted (bytes).
    public var maxBodyBytes = 4 << 20
    /// Prompt tokens computed per step over all sequences still reading their prompts.
    public var prefillChunk = 128
    /// The model id; nil = the file or folder name.
    public var modelName: String?
    /// The HTTP layer's log (start-up, connection errors) on stderr: `.info` for `dsv2 serve`;
    /// `dsv2 bench serve`, whose table is on stderr, keeps only critical messages.
    public var logLevel: Logger.Level = .info

    public init() {}

    /// Checks the values a command line may give.
    public func validate() throws {
        guard (0...65535).contains(port) else { throw ServerSetupError.option("--port must be in 0...65535 (got \(port))") }
        guard parallel >= 1 else { throw ServerSetupError.option("--parallel must be at least 1 (got \(parallel))") }
        guard maxQueue >= 0 else { throw ServerSetupError.option("--queue must be at least 0 (got \(maxQueue))") }
        guard prefillChunk >= 2 else { throw ServerSetupError.option("--prefill-chunk must be at least 2 (got \(prefillChunk))") }
        guard maxBodyBytes >= 1024 else { throw ServerSetupError.option("--max-body must be at least 1024 bytes (got \(maxBodyBytes))") }
        if let apiKey, apiKey.isEmpty { throw ServerSetupError.option("--api-key must not be empty") }
    }
}
