import ArgumentParser
import DSV2
import DSV2Server
import Foundation

/// `dsv2 serve`: the OpenAI-compatible HTTP server (DSV2Server) on a model.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve a model over an OpenAI-compatible HTTP API (chat and text completions).",
        discussion: """
        Endpoints: POST /v1/chat/completions, POST /v1/completions (both stream with "stream": true), \
        GET /v1/models, GET /health (200 once the model is loaded), GET /metrics (Prometheus text). \
        Up to --parallel requests decode together in one batched step each (continuous batching, \
        the quantized engine); a request whose prompt starts with a sequence still cached reuses \
        it. The server binds 127.0.0.1 unless --host says otherwise. Ctrl-C stops it.
        """)

    @OptionGroup var modelArguments: ModelArguments

    @Option(help: ArgumentHelp("A tokenizer folder (tokenizer.json) for a model that has none, e.g. a synthetic one.",
                               valueName: "folder"))
    var tokenizer: String?

    @Option(name: .long, help: "Address to listen on (default: 127.0.0.1, this machine only).")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port to listen on (0: any free port, printed at start).")
    var port = 8080

    @Option(name: .long, help: "Sequences decoded together, each with its own KV cache.")
    var parallel = 4

    @Option(name: .customLong("api-key"), help: "Require `Authorization: Bearer KEY` on /v1 requests.")
    var apiKey: String?

    @Option(name: .long, help: "Requests that may wait for a free sequence; more get 503.")
    var queue = 64

    @Option(name: .customLong("prefill-chunk"), help: "Prompt tokens computed per step (long prompts go in chunks between decode steps).")
    var prefillChunk = 128

    @Option(name: .customLong("max-body"), help: "Largest request body in bytes (larger: 413).")
    var maxBody = 4 << 20

    @Option(name: .customLong("model-name"), help: "The model id clients use (default: the file or folder name).")
    var modelName: String?

    @Option(name: [.customShort("c"), .customLong("ctx-size")],
            help: "Context length of each sequence in tokens (default: \(Self.defaultContext), at most max_position_embeddings).")
    var contextSize: Int?

    /// Per sequence when -c is not given: a full 160K context per slot would reserve gigabytes
    /// of latent cache for every parallel sequence.
    static let defaultContext = 4096

    func validate() throws {
        if modelArguments.engine.kind == .reference {
            throw ValidationError("serve runs the quantized engine (batched decode steps); drop --engine reference")
        }
        if let contextSize, contextSize < 2 { throw ValidationError("-c/--ctx-size must be at least 2") }
    }

    var options: ServerOptions {
        var options = ServerOptions()
        options.host = host
        options.port = port
        options.parallel = parallel
        options.contextLength = contextSize
        options.apiKey = apiKey
        options.maxQueue = queue
        options.prefillChunk = prefillChunk
        options.maxBodyBytes = maxBody
        options.modelName = modelName
        return options
    }

    func run() async throws {
        var settings = self.options
        try settings.validate()
        // Opening reads metadata only: a bad path fails here, before the server listens.
        let model = try modelArguments.selection.open()
        let maxPositions = model.config.maxPositionEmbeddings
        if let contextSize, contextSize > maxPositions {
            throw UsageError("-c/--ctx-size \(contextSize) is above the model's max_position_embeddings (\(maxPositions))")
        }
        settings.contextLength = contextSize ?? min(Self.defaultContext, maxPositions)
        let options = settings
        let choice = modelArguments.choice
        // Every slot may fill its context: the check counts parallel × context tokens of cache.
        try modelArguments.loading.check(model, choice, contextTokens: options.parallel * options.contextLength!,
                                         longestPass: options.prefillChunk + options.parallel)
        let server = OpenAIServer(options: options)
        try await server.run { port in
            Terminal.writeError("dsv2 serve: listening on http://\(options.host):\(port) (loading \(model.label(choice)))\n")
            // The engine loads while the server already answers /health (503 until ready).
            Thread.detachNewThread {
                do {
                    let start = Date()
                    try server.load(model: model, choice: choice,
                                    tokenizer: tokenizer.map { try Tokenizer.load(from: URL(fileURLWithPath: $0)) })
                    let name = server.backend?.modelName ?? "?"
                    Terminal.writeError(String(format: "dsv2 serve: model %@ ready in %.1f s (%d parallel sequences)\n",
                                               name, Date().timeIntervalSince(start), options.parallel))
                } catch {
                    Terminal.writeError("dsv2 serve: cannot load the model: \(error)\n")
                    Foundation.exit(1)
                }
            }
        }
        server.shutdown()
    }
}
