import XCTest
@testable import DSV2Text

/// Numbers of any size parse without trapping; the grammar is RFC 8259's.
final class JSONValueTests: XCTestCase {
    func testNumbersOfAnySize() throws {
        let value = try JSONValue.parse(#"[12345678901234567890, -9223372036854775808, 9007199254740993, 123456789012345, -0, 1.5e3, 1E-2]"#)
        let numbers = try XCTUnwrap(value.arrayValue)
        XCTAssertEqual(numbers[0], .number(12345678901234567890))
        XCTAssertNil(numbers[0].intValue, "beyond ±9e15 a double is not an exact integer")
        XCTAssertNil(numbers[1].intValue)
        XCTAssertNil(numbers[2].intValue)
        XCTAssertEqual(numbers[3].intValue, 123456789012345)
        XCTAssertEqual(numbers[4].intValue, 0)
        XCTAssertEqual(numbers[5].intValue, 1500)
        XCTAssertEqual(numbers[6], .number(0.01))
        XCTAssertEqual(try JSONValue.parse(String(repeating: "9", count: 300)), .number(1e300))
    }

    func testMalformedNumbersAreErrors() {
        for text in ["1e400", "-1e999", "01", "-", "1.", ".5", "+1", "1e", "1e+", "--1", "1.2.3", "0x10", "Infinity", "NaN"] {
            XCTAssertThrowsError(try JSONValue.parse(text), text) { error in
                guard case TokenizerError.invalidFile = error else { return XCTFail("\(text): \(error)") }
            }
        }
    }
}
