import XCTest
import DSV2Core
import DSV2Generation
import TestSupport

/// generation_config.json read as Hugging Face's `GenerationConfig`.
final class GenerationDefaultsTests: XCTestCase {
    private let config = ModelConfig(vocabSize: 16, hiddenSize: 8, intermediateSize: 16, moeIntermediateSize: 8,
                                     numHiddenLayers: 1, numAttentionHeads: 1, qLoraRank: nil, kvLoraRank: 4,
                                     qkNopeHeadDim: 4, qkRopeHeadDim: 2, vHeadDim: 4, ropeScaling: nil,
                                     maxPositionEmbeddings: 32, nSharedExperts: nil, nRoutedExperts: nil,
                                     numExpertsPerTok: nil, firstKDenseReplace: 1, normTopkProb: false, eosTokenIds: [2])

    private func defaults(_ json: String?) throws -> GenerationDefaults {
        try GenerationDefaults(config: config, tokenizer: nil, generationConfigJSON: json.map { Data($0.utf8) }, path: "gc.json")
    }

    /// DeepSeek-V2-Chat's file: sampling at temperature 0.3, top-p 0.95; the rest stays standard.
    func testSamplingKeysReplaceTheStandardOnes() throws {
        let d = try defaults(#"{"bos_token_id": 100000, "eos_token_id": 100001, "do_sample": true, "temperature": 0.3, "top_p": 0.95}"#)
        XCTAssertEqual(d.eosTokenIds, [2, 100001])
        var expected = SamplingOptions.standard
        expected.temperature = 0.3
        expected.topP = 0.95
        XCTAssertEqual(d.sampling, expected)
        XCTAssertEqual(d.samplingSources, ["temperature=0.3", "top_p=0.95"])
    }

    func testDoSampleFalseIsGreedyAndNoFileIsStandard() throws {
        XCTAssertEqual(try defaults(#"{"do_sample": false, "temperature": 0.7}"#).sampling.temperature, 0)
        XCTAssertEqual(try defaults(nil).sampling, .standard)
        XCTAssertEqual(try defaults(nil).eosTokenIds, [2])
        let all = try defaults(#"{"eos_token_id": [7, 8], "top_k": 5, "min_p": 0.1, "repetition_penalty": 1.1}"#)
        XCTAssertEqual(all.eosTokenIds, [2, 7, 8])
        XCTAssertEqual(all.sampling.topK, 5)
        XCTAssertEqual(all.sampling.minP, 0.1)
        XCTAssertEqual(all.sampling.repetitionPenalty, 1.1)
        XCTAssertEqual(all.sampling.temperature, SamplingOptions.standard.temperature)
    }

    func testBadValuesNameTheFileAndKey() throws {
        for (json, key) in [(#"{"temperature": -1}"#, "temperature"), (#"{"top_p": 0}"#, "top_p"),
                            (#"{"top_k": 1.5}"#, "top_k"), (#"{"do_sample": "yes"}"#, "do_sample"),
                            (#"{"eos_token_id": "x"}"#, "eos_token_id"), (#"{"repetition_penalty": 0}"#, "repetition_penalty")] {
            XCTAssertThrowsError(try defaults(json), json) {
                XCTAssertEqual(($0 as? GenerationConfigError)?.key, key, json)
                XCTAssertTrue("\($0)".hasPrefix("gc.json: "), "\($0)")
            }
        }
        XCTAssertThrowsError(try defaults("[1]")) { XCTAssertTrue("\($0)".contains("not a JSON object"), "\($0)") }
        XCTAssertThrowsError(try defaults("{")) { XCTAssertTrue("\($0)".contains("not valid JSON"), "\($0)") }
    }
}
