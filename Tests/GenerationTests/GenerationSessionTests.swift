import XCTest
import TestSupport
import DSV2Core
import DSV2Generation
import DSV2Reference
import DSV2Text

/// A `LanguageModel` whose logits are scripted: the row after position p is one-hot (10 vs 0) at
/// `script[p]` (token 0 once the script runs out), so greedy decoding replays `script` exactly.
/// It records the number of tokens fed by every call, to check what the loop feeds.
final class ScriptedModel: LanguageModel {
    let config: ModelConfig
    var script: [Int]
    private(set) var cachedTokens = 0
    private(set) var fed: [[Int32]] = []

    init(config: ModelConfig, script: [Int]) {
        self.config = config
        self.script = script
    }

    func forward(tokens: [Int32], logits: LogitsRows, tracer: ForwardTracer?) throws -> [Float] {
        guard !tokens.isEmpty else { throw LanguageModelError.emptyInput }
        guard cachedTokens + tokens.count <= config.maxPositionEmbeddings else {
            throw LanguageModelError.contextOverflow(requested: cachedTokens + tokens.count, maxPositions: config.maxPositionEmbeddings)
        }
        fed.append(tokens)
        cachedTokens += tokens.count
        var row = [Float](repeating: 0, count: config.vocabSize)
        let position = cachedTokens - 1
        row[position < script.count ? script[position] : 0] = 10
        return logits == .none ? [] : row
    }

    func resetCache() { cachedTokens = 0 }

    func truncateCache(to count: Int) throws {
        guard count >= 0, count <= cachedTokens else {
            throw LanguageModelError.badCacheLength(requested: count, cached: cachedTokens)
        }
        cachedTokens = count
    }
}

/// Argmax, so the tests do not depend on the random sampler.
private struct GreedySampler: TokenSampler {
    var calls = 0
    mutating func nextToken(logits: [Float], history: [Int]) -> Int {
        calls += 1
        return logits.indices.max { logits[$0] < logits[$1] }!
    }
}

final class GenerationSessionTests: XCTestCase {
    private static let tokenizer = try! Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
    private static let config = try! ModelConfig.load(from: Fixtures.url("tiny-dsv2"))
    private var tokenizer: Tokenizer { Self.tokenizer }
    private let eos = 6001

    /// The model will emit the tokens of `continuation` after `prompt`, then `tail`.
    private func scripted(prompt: [Int], continuation: String, tail: [Int] = []) throws -> (ScriptedModel, [Int]) {
        let ids = try tokenizer.encode(continuation)
        // script[p] is the token after position p: positions before the prompt's last are unused.
        let script = [Int](repeating: 0, count: prompt.count - 1) + ids + tail
        return (ScriptedModel(config: Self.config, script: script), ids)
    }

    private func prompt(_ text: String) throws -> [Int] { try tokenizer.encode(text, addSpecialTokens: true) }

    func testStopsAtEOSWithoutShowingIt() throws {
        let p = try prompt("Once upon")
        let (model, ids) = try scripted(prompt: p, continuation: " a time there was", tail: [eos, 300, 301])
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        var streamed = ""
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 50, eosTokenIds: [eos]),
                                     sampler: &sampler, onText: { streamed += $0 })
        XCTAssertEqual(r.stopReason, .eos)
        XCTAssertEqual(r.generatedIds, ids + [eos])
        XCTAssertEqual(r.text, " a time there was")
        XCTAssertEqual(streamed, r.text)
        // One prefill of the whole prompt, then one token per step; the EOS itself is not fed.
        XCTAssertEqual(model.fed.first?.count, p.count)
        XCTAssertEqual(model.fed.dropFirst().map(\.count), [Int](repeating: 1, count: ids.count))
        XCTAssertEqual(session.contextTokens, p + ids)
        XCTAssertEqual(model.cachedTokens, session.contextTokens.count)
    }

    func testMaxTokens() throws {
        let p = try prompt("Hello")
        let (model, ids) = try scripted(prompt: p, continuation: " one two three four five six seven eight")
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 3, eosTokenIds: [eos]), sampler: &sampler)
        XCTAssertEqual(r.stopReason, .maxTokens)
        XCTAssertEqual(r.generatedIds, Array(ids.prefix(3)))
        XCTAssertEqual(sampler.calls, 3)
        XCTAssertEqual(r.text, tokenizer.decode(Array(ids.prefix(3))))
    }

    func testStopStringSplitOverTokensIsNeverShown() throws {
        let p = try prompt("List:")
        let (model, ids) = try scripted(prompt: p, continuation: " apples, pears\n\nUser: more")
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        var pieces: [String] = []
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 50, stopStrings: ["\n\nUser:"], eosTokenIds: [eos]),
                                     sampler: &sampler, onText: { pieces.append($0) })
        XCTAssertEqual(r.stopReason, .stopString)
        XCTAssertEqual(r.text, " apples, pears")
        XCTAssertEqual(pieces.joined(), r.text)
        XCTAssertFalse(pieces.joined().contains("\n"), "no part of the stop string may be streamed")
        XCTAssertLessThan(r.generatedIds.count, ids.count, "generation ends at the token completing the stop string")
    }

    func testHeldBackTextIsReleasedWhenNoStopStringFollows() throws {
        let p = try prompt("X")
        let (model, _) = try scripted(prompt: p, continuation: " end of the road", tail: [eos])
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 50, stopStrings: ["road trip"], eosTokenIds: [eos]),
                                     sampler: &sampler)
        XCTAssertEqual(r.stopReason, .eos)
        XCTAssertEqual(r.text, " end of the road")
    }

    func testContextLimitCountsPromptAndGeneratedTokens() throws {
        let p = try prompt("The best way to learn")   // 7 tokens with BOS
        let (model, ids) = try scripted(prompt: p, continuation: " from the world, and the sun, and the sun")
        let session = try GenerationSession(model: model, tokenizer: tokenizer, contextLength: p.count + 4)
        var sampler = GreedySampler()
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 100), sampler: &sampler)
        XCTAssertEqual(r.stopReason, .contextLimit)
        XCTAssertEqual(r.generatedIds, Array(ids.prefix(4)))
        XCTAssertLessThanOrEqual(model.cachedTokens, p.count + 4)
        // A prompt that fills the context leaves no room: no token, context_limit.
        let full = try GenerationSession(model: model, tokenizer: tokenizer, contextLength: p.count)
        let none = try full.generate(prompt: p, request: GenerationRequest(maxTokens: 5), sampler: &sampler)
        XCTAssertEqual(none.stopReason, .contextLimit)
        XCTAssertEqual(none.generatedIds, [])
    }

    func testPromptLongerThanContextIsAnError() throws {
        let p = try prompt("The best way to learn")
        let (model, _) = try scripted(prompt: p, continuation: " x")
        let session = try GenerationSession(model: model, tokenizer: tokenizer, contextLength: 3)
        var sampler = GreedySampler()
        XCTAssertThrowsError(try session.generate(prompt: p, request: GenerationRequest(maxTokens: 5), sampler: &sampler)) {
            XCTAssertEqual($0 as? GenerationError, .promptTooLong(promptTokens: p.count, contextLength: 3))
        }
        XCTAssertThrowsError(try GenerationSession(model: model, tokenizer: tokenizer, contextLength: 5000))
    }

    func testInterruptStopsBeforeTheNextToken() throws {
        let p = try prompt("Go")
        let (model, ids) = try scripted(prompt: p, continuation: " on and on and on and on")
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        var polls = 0
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 50), sampler: &sampler,
                                     shouldStop: { polls += 1; return polls > 2 })
        XCTAssertEqual(r.stopReason, .interrupted)
        XCTAssertEqual(r.generatedIds, Array(ids.prefix(2)))
    }

    func testCachedPrefixIsReusedAndDivergenceTruncates() throws {
        let p = try prompt("Hello there")
        let (model, ids) = try scripted(prompt: p, continuation: " friend", tail: [eos])
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        let first = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 10, eosTokenIds: [eos]), sampler: &sampler)
        XCTAssertEqual(first.reusedTokens, 0)
        let cached = session.contextTokens
        XCTAssertEqual(cached, p + ids)

        // Continue the same sequence: only the new tokens are fed.
        let next = cached + [eos] + (try tokenizer.encode(" again"))
        let feedsBefore = model.fed.count
        let second = try session.generate(prompt: next, request: GenerationRequest(maxTokens: 1), sampler: &sampler)
        XCTAssertEqual(second.reusedTokens, cached.count)
        XCTAssertEqual(second.promptTokens, next.count - cached.count)
        XCTAssertEqual(model.fed[feedsBefore].map(Int.init), Array(next[cached.count...]))

        // A prompt that changes an earlier token: the cache is cut back to the common prefix.
        var edited = next
        edited[2] = 42
        let third = try session.generate(prompt: edited, request: GenerationRequest(maxTokens: 1), sampler: &sampler)
        XCTAssertEqual(third.reusedTokens, 2)
        XCTAssertEqual(third.promptTokens, edited.count - 2)
        XCTAssertEqual(Array(session.contextTokens.prefix(edited.count)), edited)

        // The same prompt again still feeds its last token (logits are needed to sample).
        let again = Array(session.contextTokens.prefix(edited.count))
        let fourth = try session.generate(prompt: again, request: GenerationRequest(maxTokens: 1), sampler: &sampler)
        XCTAssertEqual(fourth.promptTokens, 1)
        XCTAssertEqual(fourth.reusedTokens, again.count - 1)
    }

    func testStreamingNeverSplitsAUTF8Character() throws {
        // "é" and "🙂" are several byte-level tokens each in this vocabulary.
        let p = try prompt("Say")
        let text = " café 🙂 ok"
        let (model, ids) = try scripted(prompt: p, continuation: text, tail: [eos])
        XCTAssertTrue(ids.contains { tokenizer.decode([$0]).contains("\u{FFFD}") }, "expects a character split over tokens")
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = GreedySampler()
        var pieces: [String] = []
        let r = try session.generate(prompt: p, request: GenerationRequest(maxTokens: 50, eosTokenIds: [eos]),
                                     sampler: &sampler, onText: { pieces.append($0) })
        XCTAssertEqual(r.text, text)
        XCTAssertFalse(pieces.contains { $0.contains("\u{FFFD}") })
        XCTAssertEqual(pieces.joined(), text)
    }

    // MARK: On the real tiny-dsv2 with tok's Sampler

    /// The session with the fp32 reference and a greedy `Sampler` reproduces golden.json's 32 ids
    /// (logits match the original code to ~1e-5; the smallest top-1 gap on the path is 2.5e-2).
    func testReferenceGreedyMatchesGolden() throws {
        let data = try Data(contentsOf: Fixtures.url("tiny-dsv2/golden.json"))
        let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let inputIds = try XCTUnwrap(golden["input_ids"] as? [Int])
        let expected = try XCTUnwrap(golden["generated_ids"] as? [Int])
        XCTAssertEqual(try prompt("The best way to learn"), inputIds, "BOS + prompt, as add_bos_token says")

        let model = try ReferenceModel(checkpoint: Fixtures.url("tiny-dsv2"))
        let session = try GenerationSession(model: model, tokenizer: tokenizer)
        var sampler = Sampler(options: .greedy)
        let r = try session.generate(prompt: inputIds, request: GenerationRequest(maxTokens: 32, eosTokenIds: [eos]),
                                     sampler: &sampler)
        XCTAssertEqual(r.generatedIds, expected)
        XCTAssertEqual(r.text, golden["decoded_generated"] as? String)

        // Same seed, same tokens; the session state does not leak between fresh sessions.
        let options = SamplingOptions(temperature: 0.9, topK: 0, topP: 0.95, minP: 0, seed: 1234)
        var a = Sampler(options: options), b = Sampler(options: options)
        let first = try GenerationSession(model: model, tokenizer: tokenizer)
            .generate(prompt: inputIds, request: GenerationRequest(maxTokens: 16), sampler: &a)
        let second = try GenerationSession(model: model, tokenizer: tokenizer)
            .generate(prompt: inputIds, request: GenerationRequest(maxTokens: 16), sampler: &b)
        XCTAssertEqual(first.generatedIds, second.generatedIds)
    }
}
