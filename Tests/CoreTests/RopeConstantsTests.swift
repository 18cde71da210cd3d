import DSV2Core
import Foundation
import TestSupport
import XCTest

/// YaRN constants at the real DeepSeek-V2 / V2-Lite shapes against the values the original
/// classes computed (Tests/Fixtures/real-config-constants.json).
final class RopeConstantsTests: XCTestCase {
    func testRealConfigConstants() throws {
        let data = try Data(contentsOf: Fixtures.url("real-config-constants.json"))
        let root = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let models = try XCTUnwrap(root["models"] as? [String: Any])
        XCTAssertEqual(Set(models.keys), ["DeepSeek-V2", "DeepSeek-V2-Lite"])
        for (name, value) in models {
            let model = try XCTUnwrap(value as? [String: Any])
            let configJSON = try JSONSerialization.data(withJSONObject: try XCTUnwrap(model["config"]))
            let config = try ModelConfig.decode(configJSON, file: name)

            // Softmax scale is computed in Double as the original; compare to 1e-12 relative.
            let scale = try XCTUnwrap(model["softmax_scale"] as? Double)
            XCTAssertEqual(config.softmaxScale, scale, accuracy: scale * 1e-12, name)
            XCTAssertEqual(config.qHeadDim, try XCTUnwrap(model["q_head_dim"] as? Int))
            let amplitude = try XCTUnwrap(model["rope_cos_sin_amplitude"] as? Double)
            XCTAssertEqual(config.ropeAmplitude, amplitude, accuracy: 1e-12)

            let range = try XCTUnwrap(model["yarn_correction_range_low_high"] as? [Int])
            let ours = RotaryEmbedding.yarnCorrectionRange(config: config)
            XCTAssertEqual([ours.low, ours.high], range, name)

            // inv_freq in fp32: the original's torch.pow may differ from powf by an ulp.
            let rotary = RotaryEmbedding(config: config)
            let inverseFrequencies = try XCTUnwrap(model["rope_inv_freq_float32"] as? [Double]).map(Float.init)
            XCTAssertEqual(rotary.inverseFrequencies.count, inverseFrequencies.count)
            for (i, (a, b)) in zip(rotary.inverseFrequencies, inverseFrequencies).enumerated() {
                XCTAssertEqual(a, b, accuracy: b * 1e-6, "\(name) inv_freq[\(i)]")
            }

            // cos/sin rows: the original layout is cat(freqs, freqs) (column j and j + d/2 share
            // frequency j). At position 163839 an angle of ~1.6e5 rad carries an fp32 rounding of
            // ~8e-3 rad, but both sides take cos/sin of the same fp32 product, so they agree to
            // the rounding of the result (1e-6 absolute leaves ~16× headroom over 6e-8 observed).
            let cosRows = try XCTUnwrap(model["cos_rows"] as? [String: [Double]])
            let sinRows = try XCTUnwrap(model["sin_rows"] as? [String: [Double]])
            var worst: Double = 0
            for (positionString, expectedCos) in cosRows {
                let position = try XCTUnwrap(Int(positionString))
                let expectedSin = try XCTUnwrap(sinRows[positionString])
                let (c, s) = rotary.cosSin(position: position)
                let half = c.count
                XCTAssertEqual(expectedCos.count, 2 * half)
                for j in 0..<2 * half {
                    worst = max(worst, abs(Double(c[j % half]) - expectedCos[j]), abs(Double(s[j % half]) - expectedSin[j]))
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-6, name)
            print("[\(name)] softmax scale \(config.softmaxScale), worst cos/sin difference \(worst)")
        }
    }

    /// The fixtures' golden.json record the constants the original derived for them too.
    func testFixtureConstants() throws {
        for name in Fixtures.modelCases {
            let data = try Data(contentsOf: Fixtures.url("\(name)/golden.json"))
            let golden = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let checks = try XCTUnwrap(golden["self_checks"] as? [String: Any])
            let derived = try XCTUnwrap(checks["derived_by_original_code"] as? [String: Any])
            let config = try ModelConfig.load(from: Fixtures.url(name))
            let scale = try XCTUnwrap(derived["softmax_scale"] as? Double)
            XCTAssertEqual(config.softmaxScale, scale, accuracy: scale * 1e-12, name)
            let expected = try XCTUnwrap(derived["rope_inv_freq_float32"] as? [Double]).map(Float.init)
            let ours = RotaryEmbedding(config: config).inverseFrequencies
            XCTAssertEqual(ours.count, expected.count)
            for (a, b) in zip(ours, expected) { XCTAssertEqual(a, b, accuracy: b * 1e-6, name) }
        }
    }
}
