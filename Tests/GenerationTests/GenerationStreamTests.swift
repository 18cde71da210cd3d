import XCTest
import TestSupport
import DSV2Core
import DSV2Generation
import DSV2Text

/// `GenerationSession.stream` and the session's defaults, on a scripted model (one-hot logits:
/// 10 at the scripted token, 0 elsewhere), so every figure is known exactly.
final class GenerationStreamTests: XCTestCase {
    private static let tokenizer = try! Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
    private static let config = try! ModelConfig.load(from: Fixtures.url("tiny-dsv2"))
    private let eos = 6001

    private func session(continuation: String, tail: [Int] = [], prompt: [Int]) throws -> (GenerationSession, ScriptedModel) {
        let ids = try Self.tokenizer.encode(continuation)
        let model = ScriptedModel(config: Self.config, script: [Int](repeating: 0, count: prompt.count - 1) + ids + tail)
        // Greedy defaults (the scripted logits are one-hot), EOS from the config and the tokenizer.
        let defaults = GenerationDefaults(eosTokenIds: [eos], sampling: SamplingOptions())
        return (try GenerationSession(model: model, tokenizer: Self.tokenizer, defaults: defaults), model)
    }

    private func collect(_ stream: AsyncThrowingStream<GenerationEvent, Error>) async throws -> [GenerationEvent] {
        var events: [GenerationEvent] = []
        for try await event in stream { events.append(event) }
        return events
    }

    /// Token events carry each id and the text it made final (a stop string's start is held back
    /// and released at the end as `.text`); together they are the result's text; EOS ends the
    /// stream without an event and the finish reason is "stop".
    func testEventsAddUpToTheResult() async throws {
        let prompt = try Self.tokenizer.encode("Once", addSpecialTokens: true)
        let (session, _) = try session(continuation: " upon a café 🙂 there", tail: [eos], prompt: prompt)
        let events = try await collect(session.stream(prompt: prompt, request: GenerationRequest(maxTokens: 50, stopStrings: ["there!"])))
        var text = "", ids: [Int] = []
        var result: GenerationResult?
        for event in events {
            switch event {
            case let .token(token): text += token.text; ids.append(token.id); XCTAssertNil(token.logprob)
            case let .text(held): text += held
            case let .finished(r): result = r
            }
        }
        let r = try XCTUnwrap(result)
        XCTAssertEqual(text, " upon a café 🙂 there")
        XCTAssertEqual(r.text, text)
        XCTAssertEqual(ids + [eos], r.generatedIds)
        XCTAssertEqual(r.stopReason, .eos)
        XCTAssertEqual(r.stopReason.finishReason, "stop")
        XCTAssertNil(r.seed, "greedy: no seed")
        if case .text = events[events.count - 2] {} else { XCTFail("the held-back \"there\" comes as .text: \(events)") }
    }

    /// Log-probabilities of a one-hot row of V logits (10 at the chosen token, 0 elsewhere):
    /// chosen = 10 − log(e^10 + V − 1); the alternatives are the chosen token, then the lowest ids.
    func testLogprobsAndTopAlternatives() async throws {
        let prompt = try Self.tokenizer.encode("Once", addSpecialTokens: true)
        let (session, _) = try session(continuation: " upon", prompt: prompt)
        let events = try await collect(session.stream(prompt: prompt, request: GenerationRequest(maxTokens: 1, topLogprobs: 3)))
        guard case let .token(token) = events.first else { return XCTFail("\(events)") }
        let vocab = Double(Self.config.vocabSize)
        let expected = 10 - log(exp(10) + vocab - 1)
        XCTAssertEqual(try XCTUnwrap(token.logprob), expected, accuracy: 1e-12)
        XCTAssertEqual(token.topLogprobs.map(\.id), [token.id, 0, 1])
        XCTAssertEqual(token.topLogprobs[1].logprob, -log(exp(10) + vocab - 1), accuracy: 1e-12)
        guard case let .finished(result) = events.last else { return XCTFail("\(events)") }
        XCTAssertEqual(result.stopReason.finishReason, "length")
    }

    /// Cancelling the task that consumes the stream stops the generation at the next token: the
    /// model is fed no more, and the session is free again.
    func testCancellingTheConsumerStopsTheGeneration() async throws {
        let prompt = try Self.tokenizer.encode("Once", addSpecialTokens: true)
        // No EOS in sight: without cancellation this would run 100000 tokens.
        let (session, model) = try session(continuation: String(repeating: " again and", count: 4000), prompt: prompt)
        let started = expectation(description: "five tokens streamed")
        let task = Task {
            var count = 0
            for try await event in session.stream(prompt: prompt, request: GenerationRequest(maxTokens: 100_000)) {
                if case .token = event { count += 1; if count == 5 { started.fulfill() } }
            }
            return count
        }
        await fulfillment(of: [started], timeout: 30)
        task.cancel()
        _ = await task.result
        var free = false
        for _ in 0..<200 where !free {
            do { _ = try session.generate(prompt: prompt, request: GenerationRequest(maxTokens: 1)); free = true } catch GenerationError.busy {
                try await Task.sleep(nanoseconds: 10_000_000)
            }
        }
        XCTAssertTrue(free, "the generation thread did not stop")
        XCTAssertLessThan(model.fed.count, 1000, "stopped long before its 100000 tokens")
    }

    /// A request that leaves EOS and sampling unset takes the session's defaults: generation
    /// stops at the model's EOS, and a sampling default with a temperature reports its seed.
    func testRequestFallsBackToTheSessionDefaults() throws {
        let prompt = try Self.tokenizer.encode("Once", addSpecialTokens: true)
        let ids = try Self.tokenizer.encode(" upon a time")
        let model = ScriptedModel(config: Self.config, script: [Int](repeating: 0, count: prompt.count - 1) + ids + [eos])
        let sampling = SamplingOptions(temperature: 0.5, topK: 1)   // top-k 1: still the scripted token
        let session = try GenerationSession(model: model, tokenizer: Self.tokenizer,
                                            defaults: GenerationDefaults(eosTokenIds: [eos], sampling: sampling))
        let result = try session.generate(prompt: prompt, request: GenerationRequest(maxTokens: 20, seed: 42))
        XCTAssertEqual(result.stopReason, .eos)
        XCTAssertEqual(result.text, " upon a time")
        XCTAssertEqual(result.seed, 42)
        // Without defaults, EOS comes from config.json and the tokenizer (6001 for tiny-dsv2).
        let plain = try GenerationSession(model: ScriptedModel(config: Self.config, script: [Int](repeating: 0, count: prompt.count - 1) + [eos]),
                                          tokenizer: Self.tokenizer)
        XCTAssertEqual(plain.defaults.eosTokenIds, [eos])
        XCTAssertEqual(plain.defaults.sampling, .standard)
    }
}
