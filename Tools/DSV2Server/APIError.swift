import Foundation
import DSV2Text
import Hummingbird

/// An error answered in OpenAI's shape:
/// `{"error": {"message": …, "type": …, "param": …, "code": …}}`, with its HTTP status.
struct APIError: Error, Sendable {
    var status: HTTPResponse.Status
    var message: String
    var type: String
    /// The request field at fault, when there is one.
    var param: String?
    var code: String?
    /// Seconds the client should wait before retrying (429/503).
    var retryAfter: Int?

    static func invalid(_ param: String?, _ message: String, code: String? = nil) -> APIError {
        APIError(status: .badRequest, message: message, type: "invalid_request_error", param: param, code: code)
    }

    static func malformedJSON(_ detail: String) -> APIError {
        APIError(status: .badRequest,
                 message: "We could not parse the JSON body of your request (\(detail)). The body must be a JSON object.",
                 type: "invalid_request_error", param: nil, code: nil)
    }

    static let unauthorized = APIError(status: .unauthorized,
                                       message: "Incorrect or missing API key: send it as `Authorization: Bearer KEY` (the key given to --api-key).",
                                       type: "invalid_request_error", param: nil, code: "invalid_api_key")

    static func notFound(path: String) -> APIError {
        APIError(status: .notFound, message: "Unknown request URL: \(path). Endpoints: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics.",
                 type: "invalid_request_error", param: nil, code: "unknown_url")
    }

    static func unknownModel(_ name: String, served: String) -> APIError {
        APIError(status: .notFound, message: "The model `\(name)` does not exist; this server serves `\(served)`.",
                 type: "invalid_request_error", param: "model", code: "model_not_found")
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(status: .contentTooLarge, message: "The request body is larger than the limit of \(limit) bytes.",
                 type: "invalid_request_error", param: nil, code: "request_too_large")
    }

    static let queueFull = APIError(status: .serviceUnavailable,
                                    message: "The server is busy: every sequence slot is taken and the queue is full. Retry later.",
                                    type: "server_error", param: nil, code: "server_busy", retryAfter: 1)

    static let loading = APIError(status: .serviceUnavailable, message: "The model is still loading. Retry later.",
                                  type: "server_error", param: nil, code: "model_loading", retryAfter: 1)

    static func server(_ message: String) -> APIError {
        APIError(status: .internalServerError, message: message, type: "server_error", param: nil, code: nil)
    }

    var json: JSONValue {
        .object([("error", .object([
            ("message", .string(message)),
            ("type", .string(type)),
            ("param", param.map(JSONValue.string) ?? .null),
            ("code", code.map(JSONValue.string) ?? .null),
        ]))])
    }

    var response: Response {
        var headers: HTTPFields = [.contentType: "application/json"]
        if let retryAfter { headers[.retryAfter] = String(retryAfter) }
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: json.serialized)))
    }
}

extension JSONValue {
    /// A JSON response with this value as its body.
    func response(status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"],
                 body: .init(byteBuffer: ByteBuffer(string: serialized)))
    }
}
