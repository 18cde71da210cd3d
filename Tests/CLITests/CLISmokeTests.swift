import XCTest
import TestSupport

final class CLISmokeTests: XCTestCase {
    func testFixturesArePresent() {
        XCTAssertTrue(FileManager.default.fileExists(atPath: Fixtures.url("lite-greedy/config.json").path))
    }
}
