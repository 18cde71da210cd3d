import DSV2Core
import XCTest

/// `FloatFormat.firstNonFinite`: the scan every loader runs over every weight.
final class FloatFormatTests: XCTestCase {
    /// NaN and ±infinity at every position around the 32-byte steps are found at their index;
    /// the largest finite values are not.
    func testFindsTheFirstNaNOrInfinityAtAnyPosition() {
        let bad: [FloatFormat: [UInt32]] = [.f32: [0x7F80_0000, 0xFF80_0000, 0x7FC0_0000, 0xFFFF_FFFF],
                                            .f16: [0x7C00, 0xFC00, 0x7E00, 0xFFFF],
                                            .bf16: [0x7F80, 0xFF80, 0x7FC0, 0xFFFF]]
        let largestFinite: [FloatFormat: UInt32] = [.f32: 0x7F7F_FFFF, .f16: 0x7BFF, .bf16: 0x7F7F]
        for format in FloatFormat.allCases {
            let count = 150
            func bytes(_ values: [Int: UInt32]) -> [UInt8] {
                var out = [UInt8](repeating: 0, count: count * format.byteCount)
                for i in 0..<count {
                    let value = values[i] ?? largestFinite[format]!
                    for b in 0..<format.byteCount { out[i * format.byteCount + b] = UInt8(truncatingIfNeeded: value >> (8 * b)) }
                }
                return out
            }
            XCTAssertNil(bytes([:]).withUnsafeBytes { format.firstNonFinite(in: $0) }, "\(format)")
            for position in [0, 1, 7, 8, 15, 16, 17, 31, 32, 63, 64, 100, 149] {
                for pattern in bad[format]! {
                    let later = Dictionary([(position, pattern), (min(position + 3, count - 1), pattern)]) { first, _ in first }
                    let found = bytes(later).withUnsafeBytes { format.firstNonFinite(in: $0) }
                    XCTAssertEqual(found, position, "\(format) 0x\(String(pattern, radix: 16)) at \(position)")
                }
            }
            // A trailing partial value is ignored, an empty buffer has nothing to find.
            var partial = bytes([:])
            partial.append(0xFF)
            XCTAssertNil(partial.withUnsafeBytes { format.firstNonFinite(in: $0) })
            XCTAssertNil(format.firstNonFinite(in: UnsafeRawBufferPointer(start: nil, count: 0)))
        }
    }
}
