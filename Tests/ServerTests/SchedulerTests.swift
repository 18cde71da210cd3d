import DSV2
@testable import DSV2Server
import Foundation
import Hummingbird
import HummingbirdTesting
import XCTest

/// Continuous batching as the clients see it: prefix reuse, cancellation on disconnect, and
/// outputs that do not depend on the other requests in the batch.
final class SchedulerTests: XCTestCase {
    typealias S = ServerTestSupport

    func testSlotChoice() {
        let free: [(tokens: [Int], lastUsed: UInt64)] = [([1, 2, 3], 5), ([1, 2, 9, 9], 2), ([], 1), ([7], 3)]
        // Longest shared prefix wins, capped by the limit.
        XCTAssertTrue(BatchScheduler.chooseSlot(prompt: [1, 2, 3, 4], limit: 3, candidates: free) == (0, 3))
        XCTAssertTrue(BatchScheduler.chooseSlot(prompt: [1, 2, 3, 4], limit: 1, candidates: free) == (1, 1))
        // Equal prefixes: the least recently used; nothing shared: the least recently used overall.
        XCTAssertTrue(BatchScheduler.chooseSlot(prompt: [1, 2, 5], limit: 2, candidates: free) == (1, 2))
        XCTAssertTrue(BatchScheduler.chooseSlot(prompt: [4], limit: 0, candidates: free) == (2, 0))
    }

    /// A second chat turn reuses the first turn's cache: cached_tokens covers the first prompt.
    func testPrefixReuseAcrossChatTurns() async throws {
        let server = try S.server { $0.parallel = 1 }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let first = #"{"role": "user", "content": "Tell me about the sea."}"#
            let turn1 = try S.json(try await S.post(client, "/v1/chat/completions",
                                                    "{\"messages\": [\(first)], \"max_tokens\": 8, \"temperature\": 0}"))
            XCTAssertEqual(turn1["usage"]?["prompt_tokens_details"]?["cached_tokens"]?.intValue, 0)
            let prompt1 = try XCTUnwrap(turn1["usage"]?["prompt_tokens"]?.intValue)
            let reply = try XCTUnwrap(turn1["choices"]?[0]?["message"]?["content"]?.stringValue)
            let messages = "[\(first), {\"role\": \"assistant\", \"content\": \(S.quoted(reply))}, {\"role\": \"user\", \"content\": \"And the sky?\"}]"
            let turn2 = try S.json(try await S.post(client, "/v1/chat/completions",
                                                    "{\"messages\": \(messages), \"max_tokens\": 4, \"temperature\": 0}"))
            let cached = try XCTUnwrap(turn2["usage"]?["prompt_tokens_details"]?["cached_tokens"]?.intValue)
            XCTAssertGreaterThanOrEqual(cached, prompt1)
            XCTAssertLessThan(cached, try XCTUnwrap(turn2["usage"]?["prompt_tokens"]?.intValue))
            // The same completion prompt twice: everything but its last two tokens is reused (a
            // one-row piece would attend absorbed), same text.
            let body = #"{"prompt": "The river ran", "max_tokens": 6, "temperature": 0, "ignore_eos": true}"#
            let a = try S.json(try await S.post(client, "/v1/completions", body))
            let b = try S.json(try await S.post(client, "/v1/completions", body))
            let promptTokens = try XCTUnwrap(b["usage"]?["prompt_tokens"]?.intValue)
            XCTAssertEqual(b["usage"]?["prompt_tokens_details"]?["cached_tokens"]?.intValue, promptTokens - 2)
            XCTAssertEqual(a["choices"]?[0]?["text"], b["choices"]?[0]?["text"])
        }
    }

    /// The same request alone and among three others gives the same tokens, greedy and at a
    /// fixed seed; two runs at one seed agree, another seed differs.
    func testOutputsDoNotDependOnTheBatch() async throws {
        let server = try S.server { $0.parallel = 4; $0.prefillChunk = 5 }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let greedy = #"{"prompt": "In the morning", "max_tokens": 16, "temperature": 0, "ignore_eos": true}"#
            let seeded = #"{"prompt": "In the morning", "max_tokens": 16, "temperature": 1, "top_p": 1, "seed": 42, "ignore_eos": true}"#
            func text(_ body: String) async throws -> String {
                let root = try S.json(try await S.post(client, "/v1/completions", body))
                return try XCTUnwrap(root["choices"]?[0]?["text"]?.stringValue)
            }
            let aloneGreedy = try await text(greedy), aloneSeeded = try await text(seeded)
            let again = try await text(seeded)
            XCTAssertEqual(again, aloneSeeded)
            let others = [#"{"prompt": "A much longer prompt that takes several prefill chunks of five tokens each to read", "max_tokens": 20, "ignore_eos": true}"#,
                          #"{"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 12, "temperature": 0.7, "seed": 3}"#,
                          #"{"prompt": "Zebra", "max_tokens": 9, "temperature": 1.3, "ignore_eos": true}"#]
            for target in [greedy, seeded] {
                let results = try await withThrowingTaskGroup(of: (Int, String).self) { group in
                    group.addTask { (0, try await text(target)) }
                    for (i, other) in others.enumerated() {
                        let uri = other.contains("messages") ? "/v1/chat/completions" : "/v1/completions"
                        group.addTask {
                            let response = try await S.post(client, uri, other)
                            XCTAssertEqual(response.status, .ok)
                            return (i + 1, "")
                        }
                    }
                    var texts: [Int: String] = [:]
                    for try await (i, text) in group { texts[i] = text }
                    return texts
                }
                XCTAssertEqual(results[0], target == greedy ? aloneGreedy : aloneSeeded)
            }
            let otherSeed = try await text(seeded.replacingOccurrences(of: "\"seed\": 42", with: "\"seed\": 43"))
            XCTAssertNotEqual(otherSeed, aloneSeeded)
        }
    }

    /// A streaming client that disconnects frees its slot within a step; the server goes on.
    func testDisconnectFreesTheSlot() async throws {
        let server = try S.server { $0.parallel = 1 }
        defer { server.shutdown() }
        try await server.application().test(.ahc(.http)) { client in
            let port = try XCTUnwrap(client.port)
            for stream in [true, false] {
                let connection = try LoopbackClient(port: port)
                let body = "{\"prompt\": \"Hi\", \"max_tokens\": 100000, \"ignore_eos\": true, \"stream\": \(stream)}"
                try connection.send(LoopbackClient.request("POST", "/v1/completions", body: body))
                if stream {
                    let head = try connection.readHead()
                    XCTAssertEqual(head.status, 200)
                    var received = ""
                    try connection.readBody(headers: head.headers) { received += String(decoding: $0, as: UTF8.self); return !received.contains("data: ") }
                } else {
                    for _ in 0..<500 where server.metrics.occupancy.active == 0 { try await Task.sleep(for: .milliseconds(10)) }
                }
                XCTAssertEqual(server.metrics.occupancy.active, 1)
                let cancelledBefore = server.metrics.cancelledRequests
                connection.close()
                for _ in 0..<500 where server.metrics.occupancy.active > 0 { try await Task.sleep(for: .milliseconds(10)) }
                XCTAssertEqual(server.metrics.occupancy.active, 0, "stream: \(stream)")
                XCTAssertEqual(server.metrics.cancelledRequests, cancelledBefore + 1)
            }
            // The slot serves the next request.
            let ok = try await S.post(client, "/v1/completions", #"{"prompt": "Hi", "max_tokens": 3}"#)
            XCTAssertEqual(ok.status, .ok)
        }
    }
}
