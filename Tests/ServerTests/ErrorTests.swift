import DSV2
@testable import DSV2Server
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// Every error status in OpenAI's shape, and that bad input never gets a 500 nor stops the
/// server (it still answers afterwards).
final class ErrorTests: XCTestCase {
    typealias S = ServerTestSupport

    func testBadRequestsName400AndTheirField() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let chat = "/v1/chat/completions", text = "/v1/completions"
            let user = #""messages": [{"role": "user", "content": "Hi"}]"#
            let cases: [(String, String, String?)] = [
                (chat, "{not json", nil),
                (chat, "[1, 2]", nil),
                (chat, "", nil),
                (chat, "{}", "messages"),
                (chat, #"{"messages": []}"#, "messages"),
                (chat, #"{"messages": "Hi"}"#, "messages"),
                (chat, #"{"messages": [{"role": "wizard", "content": "Hi"}]}"#, "messages[0].role"),
                (chat, #"{"messages": [{"role": "user"}]}"#, "messages[0].content"),
                (chat, #"{"messages": [{"role": "user", "content": [{"type": "image_url"}]}]}"#, "messages[0].content[0]"),
                (chat, "{\(user), \"temperature\": \"hot\"}", "temperature"),
                (chat, "{\(user), \"temperature\": 3}", "temperature"),
                (chat, "{\(user), \"top_p\": 1.5}", "top_p"),
                (chat, "{\(user), \"max_tokens\": 0}", "max_tokens"),
                (chat, "{\(user), \"max_completion_tokens\": -3}", "max_completion_tokens"),
                (chat, "{\(user), \"n\": 2}", "n"),
                (chat, "{\(user), \"stop\": 7}", "stop"),
                (chat, "{\(user), \"stop\": [\"a\", \"b\", \"c\", \"d\", \"e\"]}", "stop"),
                (chat, "{\(user), \"stop\": \"\"}", "stop"),
                (chat, "{\(user), \"seed\": 1.5}", "seed"),
                (chat, "{\(user), \"stream\": \"yes\"}", "stream"),
                (chat, "{\(user), \"stream_options\": {\"include_usage\": true}}", "stream_options"),
                (chat, "{\(user), \"logprobs\": 1}", "logprobs"),
                (chat, "{\(user), \"top_logprobs\": 2}", "top_logprobs"),
                (chat, "{\(user), \"logprobs\": true, \"top_logprobs\": 21}", "top_logprobs"),
                (chat, "{\(user), \"presence_penalty\": 0.5}", "presence_penalty"),
                (chat, "{\(user), \"tools\": [{\"type\": \"function\"}]}", "tools"),
                (chat, "{\(user), \"model\": 3}", "model"),
                (text, "{}", "prompt"),
                (text, #"{"prompt": 5}"#, "prompt"),
                (text, #"{"prompt": ["a", "b"]}"#, "prompt"),
                (text, #"{"prompt": [1, -2]}"#, "prompt"),
                (text, #"{"prompt": [1, 99999999]}"#, "prompt"),
                (text, #"{"prompt": []}"#, "prompt"),
                (text, #"{"prompt": "Hi", "logprobs": 21}"#, "logprobs"),
                (text, #"{"prompt": "Hi", "logprobs": true}"#, "logprobs"),
                (text, #"{"prompt": "Hi", "echo": 1}"#, "echo"),
                (text, #"{"prompt": "Hi", "suffix": "end"}"#, "suffix"),
                (text, #"{"prompt": "Hi", "best_of": 3}"#, "best_of"),
            ]
            for (uri, body, param) in cases {
                let response = try await S.post(client, uri, body)
                let error = try S.error(response, status: .badRequest, param: param)
                XCTAssertEqual(error["type"]?.stringValue, "invalid_request_error", body)
                if param == nil { XCTAssertEqual(error["param"], .null, body) }
            }
            // Still serving.
            let ok = try await S.post(client, text, #"{"prompt": "Hi", "max_tokens": 2}"#)
            XCTAssertEqual(ok.status, .ok)
            XCTAssertEqual(server.metrics.requests(status: 500), 0)
        }
    }

    func testPromptLongerThanTheContext() async throws {
        let server = try S.server { $0.contextLength = 16 }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let long = String(repeating: "word ", count: 40)
            let error = try S.error(try await S.post(client, "/v1/completions", "{\"prompt\": \(S.quoted(long))}"),
                                    status: .badRequest, param: "prompt")
            XCTAssertEqual(error["code"]?.stringValue, "context_length_exceeded")
            // max_tokens is capped by the context: prompt + completion = 16.
            let prompt = try S.model.tokenizer().encode("Hi there", addSpecialTokens: true)
            let root = try S.json(try await S.post(client, "/v1/completions",
                                                   #"{"prompt": "Hi there", "max_tokens": 1000, "ignore_eos": true}"#))
            XCTAssertEqual(root["usage"]?["completion_tokens"]?.intValue, 16 - prompt.count)
            XCTAssertEqual(root["choices"]?[0]?["finish_reason"]?.stringValue, "length")
        }
    }

    func testUnauthorized() async throws {
        let server = try S.server { $0.apiKey = "sesame" }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let body = #"{"prompt": "Hi", "max_tokens": 2}"#
            let missing = try S.error(try await S.post(client, "/v1/completions", body), status: .unauthorized)
            XCTAssertEqual(missing["code"]?.stringValue, "invalid_api_key")
            try S.error(try await S.post(client, "/v1/completions", body,
                                         headers: [.contentType: "application/json", .authorization: "Bearer open"]),
                        status: .unauthorized)
            try S.error(try await client.execute(uri: "/v1/models", method: .get), status: .unauthorized)
            let good = try await S.post(client, "/v1/completions", body,
                                        headers: [.contentType: "application/json", .authorization: "Bearer sesame"])
            XCTAssertEqual(good.status, .ok)
            let health = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(health.status, .ok)
            let metrics = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(metrics.status, .ok)
        }
    }

    func testNotFound() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let route = try S.error(try await client.execute(uri: "/v1/engines", method: .get), status: .notFound)
            XCTAssertEqual(route["code"]?.stringValue, "unknown_url")
            try S.error(try await client.execute(uri: "/v1/chat/completions", method: .get), status: .notFound)
            let model = try S.error(try await S.post(client, "/v1/completions", #"{"model": "gpt-4", "prompt": "Hi"}"#),
                                    status: .notFound, param: "model")
            XCTAssertEqual(model["code"]?.stringValue, "model_not_found")
        }
    }

    func testBodyOverTheLimit() async throws {
        let server = try S.server { $0.maxBodyBytes = 2048 }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let big = "{\"prompt\": \(S.quoted(String(repeating: "a", count: 4096)))}"
            let error = try S.error(try await S.post(client, "/v1/completions", big), status: .contentTooLarge)
            XCTAssertTrue(error["message"]?.stringValue?.contains("2048") == true)
            let small = try await S.post(client, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 1}"#)
            XCTAssertEqual(small.status, .ok)
        }
    }

    /// One slot, no queue: while a request holds the slot (the scheduler is not started, so it
    /// waits there), the next one gets 503 with Retry-After.
    func testQueueFull() async throws {
        let server = try S.server({ $0.parallel = 1; $0.maxQueue = 0 }, startScheduler: false)
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let body = #"{"prompt": "Hi", "max_tokens": 2}"#
            let first = Task { try await S.post(client, "/v1/completions", body) }
            for _ in 0..<200 where server.metrics.occupancy.queued == 0 { try await Task.sleep(for: .milliseconds(10)) }
            XCTAssertEqual(server.metrics.occupancy.queued, 1)
            let busy = try await S.post(client, "/v1/completions", body)
            let error = try S.error(busy, status: .serviceUnavailable)
            XCTAssertEqual(error["code"]?.stringValue, "server_busy")
            XCTAssertEqual(busy.headers[.retryAfter], "1")
            server.backend!.scheduler.start()
            let answered = try await first.value
            XCTAssertEqual(answered.status, .ok)
        }
    }
}
