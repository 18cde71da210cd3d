import XCTest
import TestSupport

final class QuantizedSmokeTests: XCTestCase {
    func testFixturesArePresent() {
        XCTAssertTrue(FileManager.default.fileExists(atPath: Fixtures.url("lite-greedy/config.json").path))
    }
}
