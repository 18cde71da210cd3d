import Foundation
import Synchronization
import DSV2
import Hummingbird
import Logging

/// The OpenAI-compatible HTTP server (`dsv2 serve`), on Hummingbird:
///
/// | route | answer |
/// |---|---|
/// | `POST /v1/chat/completions` | `chat.completion`, or `chat.completion.chunk` server-sent events |
/// | `POST /v1/completions` | `text_completion` (also streamed) |
/// | `GET /v1/models` | the one model served |
/// | `GET /health` | 200 `{"status": "ok"}` once the model is loaded, 503 before |
/// | `GET /metrics` | Prometheus text |
///
/// Errors use OpenAI's JSON shape (`APIError`). The server listens at once; requests get 503
/// until `attach` hands it a loaded model. Requests that generate reply with
/// `Connection: close`: a client that goes away is noticed by reading the connection, which
/// then cannot carry another request.
public final class OpenAIServer: Sendable {
    public let options: ServerOptions
    public let metrics = ServerMetrics()
    private let loaded = Mutex<ServerBackend?>(nil)

    public init(options: ServerOptions) {
        self.options = options
    }

    /// Builds the engine `choice` over `model` (the quantized engine: batching needs it), starts
    /// its scheduler and makes the server ready (`/health` 200). `tokenizer` stands in for a
    /// model that has none (a synthetic one).
    public func load(model: Model, choice: EngineChoice, tokenizer: Tokenizer? = nil) throws {
        attach(try ServerBackend(model: model, choice: choice, tokenizer: tokenizer, options: options, metrics: metrics))
    }

    func attach(_ backend: ServerBackend) {
        loaded.withLock { $0 = backend }
    }

    /// Stops the scheduler of the loaded model (its queued and running requests fail).
    public func shutdown() {
        backend?.shutdown()
    }

    public var backend: ServerBackend? { loaded.withLock { $0 } }

    /// The router with every route and the middleware (errors, API key, metrics).
    public func router() -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)
        router.middlewares.add(OpenAIMiddleware(apiKey: options.apiKey, maxBodyBytes: options.maxBodyBytes, metrics: metrics))
        router.get("health") { _, _ in self.health() }
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: self.metrics.prometheusText())))
        }
        router.get("v1/models") { _, _ in try self.models() }
        router.get("v1/models/:id") { _, context in try self.model(id: context.parameters.get("id") ?? "") }
        router.post("v1/chat/completions") { request, _ in try await self.generate(request, kind: .chat) }
        router.post("v1/completions") { request, _ in try await self.generate(request, kind: .text) }
        return router
    }

    /// The Hummingbird application on `options.host:options.port`.
    public func application(onListening: @escaping @Sendable (Int) async -> Void = { _ in })
        -> some ApplicationProtocol {
        var logger = Logger(label: "Hummingbird")
        logger.logLevel = options.logLevel
        return Application(router: router(),
                           configuration: .init(address: .hostname(options.host, port: options.port), serverName: nil),
                           onServerRunning: { channel in await onListening(channel.localAddress?.port ?? 0) },
                           logger: logger)
    }

    /// Listens until SIGINT or SIGTERM, or until the calling task is cancelled.
    public func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        try await application(onListening: onListening).runService()
    }

    // MARK: Routes

    private func health() -> Response {
        backend == nil
            ? JSONValue.object([("status", .string("loading"))]).response(status: .serviceUnavailable)
            : JSONValue.object([("status", .string("ok"))]).response()
    }

    private func ready() throws -> ServerBackend {
        guard let backend else { throw APIError.loading }
        return backend
    }

    private func modelObject(_ backend: ServerBackend) -> JSONValue {
        .object([("id", .string(backend.modelName)), ("object", .string("model")),
                 ("created", .number(Double(backend.created))), ("owned_by", .string("dsv2"))])
    }

    private func models() throws -> Response {
        let backend = try ready()
        return JSONValue.object([("object", .string("list")), ("data", .array([modelObject(backend)]))]).response()
    }

    private func model(id: String) throws -> Response {
        let backend = try ready()
        guard id == backend.modelName else { throw APIError.unknownModel(id, served: backend.modelName) }
        return modelObject(backend).response()
    }

    private func generate(_ request: Request, kind: CompletionResponder.Kind) async throws -> Response {
        let backend = try ready()
        if let length = request.headers[.contentLength].flatMap(Int.init), length > options.maxBodyBytes {
            throw APIError.tooLarge(limit: options.maxBodyBytes)
        }
        var request = request
        let body: ByteBuffer
        do {
            body = try await request.collectBody(upTo: options.maxBodyBytes)
        } catch let error as HTTPResponseError where error.status == .contentTooLarge {
            throw APIError.tooLarge(limit: options.maxBodyBytes)
        }
        let plan = try GenerationPlan(kind: kind, body: Array(body.readableBytesView), backend: backend)
        let job: GenerationJob
        do {
            job = try backend.scheduler.submit(prompt: plan.prompt, parameters: plan.parameters)
        } catch {
            throw APIError.queueFull
        }
        let responder = CompletionResponder(kind: kind, model: backend.modelName, fingerprint: backend.fingerprint,
                                            includeUsage: plan.includeUsage, tokenizer: backend.tokenizer,
                                            logprobs: plan.parameters.logprobs, prompt: plan.prompt, echo: plan.echo)
        let scheduler = backend.scheduler
        let cancel: @Sendable () -> Void = { job.cancel(); scheduler.wake() }
        if plan.stream {
            let headers: HTTPFields = [.contentType: "text/event-stream", .cacheControl: "no-cache", .connection: "close"]
            return Response(status: .ok, headers: headers, body: .init { [request] writer in
                try await request.body.consumeWithInboundCloseHandler { _ in
                    do {
                        for await event in job.events {
                            let lines = responder.sse(event)
                            if !lines.isEmpty { try await writer.write(ByteBuffer(string: lines)) }
                        }
                        if responder.failure == nil { try await writer.write(ByteBuffer(string: "data: [DONE]\n\n")) }
                    } catch {
                        cancel()
                        throw error
                    }
                } onInboundClosed: { cancel() }
                try await writer.finish(nil)
            })
        }
        try await request.body.consumeWithInboundCloseHandler { _ in
            for await event in job.events { responder.consume(event) }
        } onInboundClosed: { cancel() }
        if let failure = responder.failure { throw APIError.server(failure) }
        if responder.finish?.reason == .cancelled { return Response(status: .init(code: 499, reasonPhrase: "Client Closed Request")) }
        var response = responder.body().response()
        response.headers[.connection] = "close"
        return response
    }
}

/// A request turned into what the scheduler runs.
struct GenerationPlan {
    var prompt: [Int]
    var parameters: GenerationParameters
    var stream: Bool
    var includeUsage: Bool
    var echo: String?

    init(kind: CompletionResponder.Kind, body: [UInt8], backend: ServerBackend) throws {
        let tokenizer = backend.tokenizer
        let common: CommonFields
        var logprobs: Int?
        var promptLogprobs = false
        switch kind {
        case .chat:
            let chat = try ChatCompletionRequest(body: body)
            common = chat.common
            guard tokenizer.chatTemplate != nil else {
                throw APIError.invalid("messages", "This model has no chat template (tokenizer_config.json); use /v1/completions.")
            }
            do {
                prompt = try tokenizer.encodeChat(chat.messages, addGenerationPrompt: true)
            } catch {
                throw APIError.invalid("messages", "The chat template could not render these messages: \(error)")
            }
            logprobs = chat.logprobs ? (chat.topLogprobs ?? 0) : nil
        case .text:
            let text = try CompletionRequest(body: body, vocabularySize: backend.engine.config.vocabSize)
            common = text.common
            switch text.prompt {
            case let .text(string):
                do {
                    prompt = try tokenizer.encode(string, addSpecialTokens: true)
                } catch {
                    throw APIError.invalid("prompt", "The prompt could not be tokenized: \(error)")
                }
                if text.echo { echo = string }
            case let .tokens(ids):
                prompt = ids
                if text.echo { echo = tokenizer.decode(ids) }
            }
            logprobs = text.logprobs
            promptLogprobs = text.echo && text.logprobs != nil
        }
        if let model = common.model, model != backend.modelName { throw APIError.unknownModel(model, served: backend.modelName) }
        guard !prompt.isEmpty else { throw APIError.invalid(kind == .chat ? "messages" : "prompt", "The prompt is empty.") }
        let room = backend.contextLength - prompt.count
        guard room >= 1 else {
            throw APIError.invalid(kind == .chat ? "messages" : "prompt",
                                   "The prompt has \(prompt.count) tokens; this server's context holds \(backend.contextLength) (prompt and completion together).",
                                   code: "context_length_exceeded")
        }
        stream = common.stream
        includeUsage = common.includeUsage
        parameters = GenerationParameters(maxTokens: min(common.maxTokens ?? room, room), stopStrings: common.stop,
                                          eosTokenIds: common.ignoreEOS ? [] : backend.defaults.eosTokenIds,
                                          sampling: common.sampling(defaults: backend.defaults.sampling),
                                          logprobs: logprobs, promptLogprobs: promptLogprobs)
    }
}

/// Answers every error in OpenAI's shape, checks the API key, counts responses by status.
struct OpenAIMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let apiKey: String?
    let maxBodyBytes: Int
    let metrics: ServerMetrics

    /// Paths open without the key (probes and scrapers).
    static let openPaths: Set<String> = ["/health", "/metrics"]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let response: Response
        if let apiKey, !Self.openPaths.contains(request.uri.path),
           request.headers[.authorization] != "Bearer \(apiKey)" {
            response = APIError.unauthorized.response
        } else {
            do {
                response = try await next(request, context)
            } catch let error as APIError {
                response = error.response
            } catch let error as HTTPResponseError {
                switch error.status {
                case .notFound: response = APIError.notFound(path: request.uri.path).response
                case .contentTooLarge: response = APIError.tooLarge(limit: maxBodyBytes).response
                default:
                    response = APIError(status: error.status, message: "\(error)",
                                        type: error.status.code < 500 ? "invalid_request_error" : "server_error").response
                }
            } catch {
                response = APIError.server("\(error)").response
            }
        }
        metrics.recordResponse(status: response.status.code)
        return response
    }
}
