import XCTest
import TestSupport

/// The refusal of a CPU without x86-64-v3 (the constructor in Quantized/CPUCheck) runs before
/// `main`: the binary, told to treat AVX2 and FMA as absent (DSV2_CPU_IGNORE), exits 1 naming
/// them before any command runs.
final class CPURefusalTests: XCTestCase {
    func testBinaryRefusesACPUWithoutAVX2() throws {
        #if !arch(x86_64) || DSV2_PORTABLE
        throw XCTSkip("portable build: no CPU check")
        #else
        let refused = try DSV2Process.run(["--help"], environment: ["DSV2_CPU_IGNORE": "avx2,fma"])
        XCTAssertEqual(refused.status, 1)
        XCTAssertTrue(refused.stderr.hasPrefix("dsv2: this CPU lacks avx2, fma, which this build"), refused.stderr)
        XCTAssertEqual(refused.stdout, "", "nothing ran: no help text")
        XCTAssertEqual(try DSV2Process.run(["--help"]).status, 0, "the same binary runs with nothing masked")
        #endif
    }
}
