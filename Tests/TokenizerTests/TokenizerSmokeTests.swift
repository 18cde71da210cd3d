import XCTest
import TestSupport

final class TokenizerSmokeTests: XCTestCase {
    func testFixturesArePresent() {
        XCTAssertTrue(FileManager.default.fileExists(atPath: Fixtures.url("lite-greedy/config.json").path))
    }
}
