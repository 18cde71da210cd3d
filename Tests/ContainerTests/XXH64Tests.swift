import XCTest
import DSV2Container

final class XXH64Tests: XCTestCase {
    /// Reference vectors of XXH64 with seed 0 (xxHash's and python-xxhash's documentation).
    func testKnownVectors() {
        XCTAssertEqual(XXH64.hash(bytes: [UInt8]()), 0xEF46_DB37_51D8_E999)
        XCTAssertEqual(XXH64.hash(bytes: Array("a".utf8)), 0xD24E_C4F1_A98C_6E5B)
        XCTAssertEqual(XXH64.hash(bytes: Array("abc".utf8)), 0x44BC_2CF5_AD77_0999)
        XCTAssertEqual(XXH64.hash(bytes: Array("Nobody inspects the spammish repetition".utf8)), 0xFBCE_A83C_8A37_8BF1)
    }

    static func pattern(_ n: Int) -> [UInt8] { (0..<n).map { UInt8(($0 * 31 + 7) % 251) } }

    /// zstd frames end with the low 32 bits of XXH64(content, seed 0): these were read from
    /// `zstd --check` output (zstd 1.5.4) for the same inputs, covering every tail length path.
    func testLow32BitsMatchZstdFrameChecksums() {
        let expected: [(Int, UInt32)] = [(1, 0xE858_BBB7), (31, 0x485E_846E), (32, 0x5D45_BBC8), (33, 0x951C_17A5),
                                         (64, 0x19BD_5A1B), (100, 0x5621_716D), (1000, 0xCDE3_C58D), (100_003, 0x6BEB_233A)]
        for (n, low) in expected {
            XCTAssertEqual(UInt32(truncatingIfNeeded: XXH64.hash(bytes: Self.pattern(n))), low, "length \(n)")
        }
    }

    func testStreamingEqualsOneShot() {
        let data = Self.pattern(10_007)
        let oneShot = XXH64.hash(bytes: data)
        for step in [1, 7, 31, 32, 33, 4096] {
            var hasher = XXH64()
            data.withUnsafeBytes { raw in
                var offset = 0
                while offset < raw.count {
                    let n = min(step, raw.count - offset)
                    hasher.update(raw.baseAddress! + offset, count: n)
                    offset += n
                }
            }
            XCTAssertEqual(hasher.finalize(), oneShot, "step \(step)")
        }
        XCTAssertNotEqual(XXH64.hash(bytes: data, seed: 1), oneShot)
    }
}
