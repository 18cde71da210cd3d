import Foundation
import TestSupport
import XCTest

/// `dsv2 compare --model <fixture> --engines reference,quantized:<q8|q4>` on every checkpoint
/// fixture: prints the per-layer table (cosine, logits KL/top-1, routing agreement) in the test
/// output and checks guard limits.
///
/// The limits are regression guards, set with a wide margin below what the engine measured when
/// this test was written (worst over the fixtures — q8: hidden cos 0.9988, logits KL 1.4e-3,
/// router Jaccard 0.95; q4: hidden cos 0.904, KL 0.097, Jaccard 0.75; the three small fixtures
/// have random weights, which quantize worse than trained ones). A kernel or layout bug moves these
/// by orders of magnitude (cos ≪ 0.9, KL ≫ 1), far past the limits.
final class CompareEnginesTests: XCTestCase {
    static let limits = [
        "q8": "hidden.*:cos<0.995,logits:kl>0.01,logits:top5<0.75,router.*:jaccard<0.85",
        "q4": "hidden.*:cos<0.8,logits:kl>0.3,logits:top5<0.4,router.*:jaccard<0.6",
    ]

    func testQuantizedEnginesAgainstTheReferenceOnEveryFixture() throws {
        var summary: [String] = []
        for fixture in Fixtures.modelCases {
            for quant in ["q8", "q4"] {
                let model = Fixtures.url(fixture).path
                let table = try DSV2Process.run(["compare", "--model", model, "--engines", "reference,quantized:\(quant)",
                                                 "--fail-above", Self.limits[quant]!])
                print("=== \(fixture): reference vs quantized:\(quant) (input_ids of golden.safetensors)\n\(table.stdout)")
                XCTAssertEqual(table.status, 0, "\(fixture) \(quant): \(table.stdout)\(table.stderr)")

                let r = try DSV2Process.run(["compare", "--model", model, "--engines", "reference,quantized:\(quant)",
                                             "--trace", "hidden.*,router.*,logits", "--json"])
                XCTAssertEqual(r.status, 0, r.stderr)
                let tensors = try XCTUnwrap(try r.json()["tensors"] as? [[String: Any]])
                func metrics(_ name: String) -> [String: Double] {
                    tensors.first { $0["name"] as? String == name }?["metrics"] as? [String: Double] ?? [:]
                }
                let hidden = tensors.filter { ($0["name"] as? String)?.hasPrefix("hidden.") == true }
                let cosines = hidden.map { String(format: "%.5f", ($0["metrics"] as! [String: Double])["cos"]!) }
                let routers = tensors.filter { $0["kind"] as? String == "router" }.map { t -> String in
                    let m = t["metrics"] as! [String: Double]
                    return String(format: "%@ %.3f/%.0f%%", t["name"] as! String, m["jaccard"]!, m["identical"]! * 100)
                }
                let logits = metrics("logits")
                summary.append(String(format: "%@ %@: hidden cos [%@]; logits KL %.2e (max %.2e) top1 %.1f%% top5 %.1f%%; routers (jaccard/identical) %@",
                                      fixture, quant, cosines.joined(separator: " "), logits["kl"] ?? .nan,
                                      logits["klmax"] ?? .nan, (logits["top1"] ?? .nan) * 100, (logits["top5"] ?? .nan) * 100,
                                      routers.isEmpty ? "none" : routers.joined(separator: ", ")))
            }
        }
        print("=== summary\n" + summary.joined(separator: "\n"))
    }
}
