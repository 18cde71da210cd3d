import XCTest
import DSV2
import TestSupport

/// `Model.session`: generation with the model's own defaults, through the synchronous and the
/// streaming API.
final class ModelSessionTests: XCTestCase {
    private let folder = Fixtures.url("tiny-dsv2")

    /// The reference engine with tiny-dsv2's defaults (greedy, from generation_config.json; EOS
    /// from the files) reproduces the golden continuation of DeepSeek's code without any option.
    func testDefaultsReproduceTheGoldenContinuation() throws {
        let golden = try Fixtures.golden("tiny-dsv2")
        let prompt = try golden.int32s("input_ids").map(Int.init)
        let expected = try golden.int32s("generated_ids").map(Int.init)
        let session = try Model.open(folder).session(.reference())
        let result = try session.generate(prompt: prompt, request: GenerationRequest(maxTokens: expected.count))
        XCTAssertEqual(result.generatedIds, expected)
        XCTAssertNil(result.seed)
    }

    /// Streaming gives the same tokens and text as the synchronous call.
    func testStreamEqualsGenerate() async throws {
        let model = try Model.open(folder)
        let request = GenerationRequest(maxTokens: 24, logprobs: true)
        let direct = try model.session().generate("The meaning of life is", request: request)
        var streamed = "", ids: [Int] = []
        var finished: GenerationResult?
        for try await event in try model.session().stream("The meaning of life is", request: request) {
            switch event {
            case let .token(token):
                streamed += token.text
                ids.append(token.id)
                XCTAssertLessThanOrEqual(try XCTUnwrap(token.logprob), 0)
            case let .text(text): streamed += text
            case let .finished(result): finished = result
            }
        }
        XCTAssertEqual(streamed, direct.text)
        XCTAssertEqual(ids, direct.generatedIds.filter { $0 != 6001 })
        XCTAssertEqual(finished?.generatedIds, direct.generatedIds)
    }
}
