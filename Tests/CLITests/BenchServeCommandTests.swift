import XCTest
import TestSupport

/// `dsv2 bench serve --json` on the embedded tiny-dsv2: the server runs in-process, the clients
/// stream over loopback, and the report uses the CLI's snake_case keys with sane values.
/// (Speed itself is never asserted in unit tests.)
final class BenchServeCommandTests: XCTestCase {
    func testJSONReport() throws {
        let run = try DSV2Process.run(["bench", "serve", "--clients", "1,2", "--prompt-tokens", "8", "--gen-tokens", "3",
                                       "-t", "1", "--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let report = try XCTUnwrap(JSONSerialization.jsonObject(with: run.stdoutData) as? [String: Any], run.stdout)
        XCTAssertEqual(report["prompt_tokens"] as? Int, 8)
        XCTAssertEqual(report["gen_tokens"] as? Int, 3)
        XCTAssertEqual(report["threads"] as? Int, 1)
        let levels = try XCTUnwrap(report["levels"] as? [[String: Any]])
        XCTAssertEqual(levels.map { $0["clients"] as? Int }, [1, 2])
        for level in levels {
            let clients = try XCTUnwrap(level["clients"] as? Int)
            XCTAssertEqual(level["generated_tokens"] as? Int, 3 * clients)
            for key in ["aggregate_decode_tokens_per_second", "decode_step_tokens_per_second",
                        "per_stream_decode_tokens_per_second", "wall_seconds"] {
                XCTAssertGreaterThan(level[key] as? Double ?? 0, 0, key)
            }
            let p50 = try XCTUnwrap(level["ttft_p50_seconds"] as? Double), p95 = try XCTUnwrap(level["ttft_p95_seconds"] as? Double)
            XCTAssertGreaterThan(p50, 0)
            XCTAssertLessThanOrEqual(p50, p95)
            XCTAssertGreaterThan(level["peak_rss_bytes"] as? Int ?? 0, 1 << 20)
        }
    }
}
