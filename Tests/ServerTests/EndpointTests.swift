import DSV2
@testable import DSV2Server
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// Every endpoint through a live server on loopback (HummingbirdTesting + AsyncHTTPClient):
/// OpenAI's field names, object types and usage, and the server-sent-event framing.
final class EndpointTests: XCTestCase {
    typealias S = ServerTestSupport

    func testHealthIsReadyOnlyOnceTheModelIsLoaded() async throws {
        let server = try S.server(load: false)
        try await server.application().test(.ahc(.http)) { client in
            let loading = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(loading.status, .serviceUnavailable)
            XCTAssertEqual(try S.json(loading)["status"]?.stringValue, "loading")
            let early = try await S.post(client, "/v1/completions", #"{"prompt": "Hi"}"#)
            try S.error(early, status: .serviceUnavailable)
            XCTAssertEqual(early.headers[.retryAfter], "1")
            let loaded = try S.server()
            server.attach(loaded.backend!)
            let ready = try await client.execute(uri: "/health", method: .get)
            XCTAssertEqual(ready.status, .ok)
            XCTAssertEqual(try S.json(ready)["status"]?.stringValue, "ok")
            loaded.shutdown()
        }
    }

    func testModels() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let list = try S.json(try await client.execute(uri: "/v1/models", method: .get))
            XCTAssertEqual(list["object"]?.stringValue, "list")
            let model = try XCTUnwrap(list["data"]?.arrayValue?.first)
            XCTAssertEqual(model["id"]?.stringValue, "tiny-dsv2")
            XCTAssertEqual(model["object"]?.stringValue, "model")
            XCTAssertNotNil(model["created"]?.intValue)
            XCTAssertEqual(model["owned_by"]?.stringValue, "dsv2")
            let one = try S.json(try await client.execute(uri: "/v1/models/tiny-dsv2", method: .get))
            XCTAssertEqual(one["id"]?.stringValue, "tiny-dsv2")
            try S.error(try await client.execute(uri: "/v1/models/gpt-4", method: .get), status: .notFound, param: "model")
        }
    }

    func testChatCompletion() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let body = #"{"model": "tiny-dsv2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Tell me a story."}], "max_tokens": 12, "temperature": 0}"#
            let response = try await S.post(client, "/v1/chat/completions", body)
            XCTAssertEqual(response.status, .ok)
            let root = try S.json(response)
            XCTAssertTrue(root["id"]?.stringValue?.hasPrefix("chatcmpl-") == true)
            XCTAssertEqual(root["object"]?.stringValue, "chat.completion")
            XCTAssertEqual(root["model"]?.stringValue, "tiny-dsv2")
            XCTAssertNotNil(root["created"]?.intValue)
            XCTAssertEqual(root["system_fingerprint"]?.stringValue, "fp_test")
            let choice = try XCTUnwrap(root["choices"]?.arrayValue?.first)
            XCTAssertEqual(root["choices"]?.arrayValue?.count, 1)
            XCTAssertEqual(choice["index"]?.intValue, 0)
            XCTAssertEqual(choice["message"]?["role"]?.stringValue, "assistant")
            let content = try XCTUnwrap(choice["message"]?["content"]?.stringValue)
            XCTAssertFalse(content.hasPrefix(" "), "the separator space after Assistant: is not part of the reply")
            XCTAssertEqual(choice["logprobs"], .null)
            let usage = try XCTUnwrap(root["usage"])
            let completion = try XCTUnwrap(usage["completion_tokens"]?.intValue)
            let prompt = try XCTUnwrap(usage["prompt_tokens"]?.intValue)
            XCTAssertEqual(usage["total_tokens"]?.intValue, prompt + completion)
            XCTAssertEqual(usage["prompt_tokens_details"]?["cached_tokens"]?.intValue, 0)
            let expectedPrompt = try S.model.tokenizer().encodeChat([ChatMessage(role: "system", content: "Be brief."),
                                                                    ChatMessage(role: "user", content: "Tell me a story.")],
                                                                   addGenerationPrompt: true)
            XCTAssertEqual(prompt, expectedPrompt.count)
            XCTAssertLessThanOrEqual(completion, 12)
            let reason = choice["finish_reason"]?.stringValue
            XCTAssertTrue(reason == "length" ? completion == 12 : reason == "stop", "\(String(describing: reason)) after \(completion)")
            XCTAssertEqual(response.headers[.connection], "close")
        }
    }

    /// The streamed chunks: role first, content deltas, a final chunk with finish_reason, the
    /// usage chunk (include_usage: every other chunk has "usage": null), data: [DONE]; the text
    /// equals the unstreamed reply (greedy).
    func testChatStreamFraming() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let messages = #""messages": [{"role": "user", "content": "Once upon a time"}], "max_tokens": 20, "temperature": 0"#
            let whole = try S.json(try await S.post(client, "/v1/chat/completions", "{\(messages)}"))
            let expected = try XCTUnwrap(whole["choices"]?[0]?["message"]?["content"]?.stringValue)
            let response = try await S.post(client, "/v1/chat/completions",
                                            #"{"stream": true, "stream_options": {"include_usage": true}, "# + messages + "}")
            XCTAssertEqual(response.headers[.cacheControl], "no-cache")
            let chunks = try S.events(response)
            XCTAssertGreaterThanOrEqual(chunks.count, 3)
            let id = chunks[0]["id"]?.stringValue
            for chunk in chunks {
                XCTAssertEqual(chunk["object"]?.stringValue, "chat.completion.chunk")
                XCTAssertEqual(chunk["id"]?.stringValue, id)
                XCTAssertNotNil(chunk["created"]?.intValue)
                XCTAssertEqual(chunk["model"]?.stringValue, "tiny-dsv2")
            }
            XCTAssertEqual(chunks[0]["choices"]?[0]?["delta"]?["role"]?.stringValue, "assistant")
            var text = ""
            for chunk in chunks.dropLast() {
                XCTAssertEqual(chunk["usage"], .null)
                text += chunk["choices"]?[0]?["delta"]?["content"]?.stringValue ?? ""
            }
            let final = chunks[chunks.count - 2]["choices"]?[0]
            XCTAssertNotNil(final?["finish_reason"]?.stringValue)
            XCTAssertEqual(final?["delta"], .object([]))
            for chunk in chunks.dropLast(2) { XCTAssertEqual(chunk["choices"]?[0]?["finish_reason"], .null) }
            let usageChunk = try XCTUnwrap(chunks.last)
            XCTAssertEqual(usageChunk["choices"]?.arrayValue?.count, 0)
            XCTAssertEqual(usageChunk["usage"]?["completion_tokens"], whole["usage"]?["completion_tokens"])
            XCTAssertEqual(text, expected)
            // Without include_usage: no usage anywhere.
            let plain = try S.events(try await S.post(client, "/v1/chat/completions", #"{"stream": true, "# + messages + "}"))
            XCTAssertTrue(plain.allSatisfy { $0["usage"] == nil })
            XCTAssertEqual(plain.compactMap { $0["choices"]?[0]?["delta"]?["content"]?.stringValue }.joined(), expected)
        }
    }

    func testChatLogprobs() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let body = #"{"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 6, "temperature": 0, "logprobs": true, "top_logprobs": 3, "ignore_eos": true}"#
            let root = try S.json(try await S.post(client, "/v1/chat/completions", body))
            let logprobs = try XCTUnwrap(root["choices"]?[0]?["logprobs"])
            XCTAssertEqual(logprobs["refusal"], .null)
            let content = try XCTUnwrap(logprobs["content"]?.arrayValue)
            XCTAssertEqual(content.count, 6)
            for entry in content {
                let token = try XCTUnwrap(entry["token"]?.stringValue)
                let logprob = try XCTUnwrap(entry["logprob"].flatMap { if case let .number(d) = $0 { return d } else { return nil } })
                XCTAssertLessThanOrEqual(logprob, 0)
                XCTAssertEqual(entry["bytes"]?.arrayValue?.count, Array(token.utf8).count)
                let top = try XCTUnwrap(entry["top_logprobs"]?.arrayValue)
                XCTAssertEqual(top.count, 3)
                // Greedy: the chosen token is the most likely one.
                XCTAssertEqual(top[0]["token"], entry["token"])
                XCTAssertEqual(top[0]["logprob"], entry["logprob"])
                let values = top.compactMap { v -> Double? in if case let .number(d) = v["logprob"]! { return d } else { return nil } }
                XCTAssertEqual(values, values.sorted(by: >))
            }
        }
    }

    func testCompletions() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let tokenizer = try S.model.tokenizer()
            let root = try S.json(try await S.post(client, "/v1/completions",
                                                   #"{"model": "tiny-dsv2", "prompt": "The cat sat", "max_tokens": 5, "temperature": 0, "ignore_eos": true}"#))
            XCTAssertTrue(root["id"]?.stringValue?.hasPrefix("cmpl-") == true)
            XCTAssertEqual(root["object"]?.stringValue, "text_completion")
            let choice = try XCTUnwrap(root["choices"]?[0])
            XCTAssertEqual(choice["index"]?.intValue, 0)
            XCTAssertEqual(choice["finish_reason"]?.stringValue, "length")
            XCTAssertEqual(choice["logprobs"], .null)
            let text = try XCTUnwrap(choice["text"]?.stringValue)
            XCTAssertEqual(root["usage"]?["completion_tokens"]?.intValue, 5)
            let ids = try tokenizer.encode("The cat sat", addSpecialTokens: true)
            XCTAssertEqual(root["usage"]?["prompt_tokens"]?.intValue, ids.count)

            // The same prompt as token ids gives the same text; echo prepends the prompt.
            let idsJSON = "[" + ids.map(String.init).joined(separator: ",") + "]"
            let byIds = try S.json(try await S.post(client, "/v1/completions",
                                                    #"{"prompt": "# + idsJSON + #", "max_tokens": 5, "temperature": 0, "ignore_eos": true}"#))
            XCTAssertEqual(byIds["choices"]?[0]?["text"]?.stringValue, text)
            let echo = try S.json(try await S.post(client, "/v1/completions",
                                                   #"{"prompt": ["The cat sat"], "max_tokens": 5, "temperature": 0, "ignore_eos": true, "echo": true, "logprobs": 2}"#))
            XCTAssertEqual(echo["choices"]?[0]?["text"]?.stringValue, "The cat sat" + text)
            let logprobs = try XCTUnwrap(echo["choices"]?[0]?["logprobs"])
            let tokens = try XCTUnwrap(logprobs["tokens"]?.arrayValue)
            XCTAssertEqual(tokens.count, ids.count + 5)
            XCTAssertEqual(logprobs["token_logprobs"]?[0], .null, "the first prompt token has no log-probability")
            XCTAssertEqual(logprobs["top_logprobs"]?[0], .null)
            XCTAssertEqual(logprobs["token_logprobs"]?.arrayValue?.count, tokens.count)
            XCTAssertEqual(logprobs["text_offset"]?.arrayValue?.count, tokens.count)
            XCTAssertEqual(logprobs["top_logprobs"]?[1]?.objectValue?.count ?? 0 > 0, true)
            let generated = tokens.suffix(5).compactMap(\.stringValue).joined()
            XCTAssertEqual(generated, text)

            // Streamed completions: text chunks, then finish_reason, then [DONE].
            let chunks = try S.events(try await S.post(client, "/v1/completions",
                                                       #"{"prompt": "The cat sat", "max_tokens": 5, "temperature": 0, "ignore_eos": true, "stream": true}"#))
            XCTAssertTrue(chunks.allSatisfy { $0["object"]?.stringValue == "text_completion" })
            XCTAssertEqual(chunks.compactMap { $0["choices"]?[0]?["text"]?.stringValue }.joined(), text)
            XCTAssertEqual(chunks.last?["choices"]?[0]?["finish_reason"]?.stringValue, "length")
        }
    }

    func testStopStrings() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let base = #""prompt": "Once upon a time", "max_tokens": 24, "temperature": 0, "ignore_eos": true"#
            let fullRoot = try S.json(try await S.post(client, "/v1/completions", "{\(base)}"))
            let full = try XCTUnwrap(fullRoot["choices"]?[0]?["text"]?.stringValue)
            let scalars = Array(full.unicodeScalars)
            XCTAssertGreaterThan(scalars.count, 8)
            // A stop string from the middle of the text: the reply ends before its first occurrence.
            let stop = String(String.UnicodeScalarView(scalars[(scalars.count / 2)..<(scalars.count / 2 + 3)]))
            let cut = try XCTUnwrap(full.range(of: stop))
            for (field, stream) in [("\(S.quoted(stop))", false), ("[\(S.quoted("zzzz")), \(S.quoted(stop))]", true)] {
                let body = "{\(base), \"stop\": \(field), \"stream\": \(stream)}"
                let response = try await S.post(client, "/v1/completions", body)
                let (text, reason): (String, String?)
                if stream {
                    let chunks = try S.events(response)
                    text = chunks.compactMap { $0["choices"]?[0]?["text"]?.stringValue }.joined()
                    reason = chunks.last?["choices"]?[0]?["finish_reason"]?.stringValue
                } else {
                    let choice = try S.json(response)["choices"]?[0]
                    text = choice?["text"]?.stringValue ?? "?"
                    reason = choice?["finish_reason"]?.stringValue
                }
                XCTAssertEqual(text, String(full[..<cut.lowerBound]))
                XCTAssertEqual(reason, "stop")
            }
        }
    }

    func testMetrics() async throws {
        let server = try S.server()
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            _ = try await S.post(client, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 3, "ignore_eos": true}"#)
            _ = try await S.post(client, "/v1/completions", #"{"prompt": 5}"#)
            let response = try await client.execute(uri: "/metrics", method: .get)
            XCTAssertEqual(response.status, .ok)
            XCTAssertTrue(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            let text = String(buffer: response.body)
            for line in ["dsv2_requests_total{status=\"200\"} 1", "dsv2_requests_total{status=\"400\"} 1",
                         "dsv2_generated_tokens_total 3", "dsv2_sequences_active 0", "dsv2_sequences_queued 0",
                         "# TYPE dsv2_decode_tokens_per_second gauge", "# TYPE dsv2_prompt_tokens_total counter"] {
                XCTAssertTrue(text.contains(line + "\n"), "missing \(line) in\n\(text)")
            }
        }
    }
}
