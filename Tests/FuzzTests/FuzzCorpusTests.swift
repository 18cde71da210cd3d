import DSV2Fuzz
import Foundation
import TestSupport
import XCTest

/// Every file of the committed fuzz corpus (`Tests/Fuzz/corpus/<target>/`: the seeds and every
/// input a fuzzer once crashed on) through the same entry as `scripts/fuzz`, in process: each
/// must be accepted or rejected with an error that says something, never crash.
final class FuzzCorpusTests: XCTestCase {
    static let corpus = Fixtures.repositoryRoot.appendingPathComponent("Tests/Fuzz/corpus")

    func testEveryTargetHasSeedsAndEveryFolderATarget() throws {
        let folders = try FileManager.default.contentsOfDirectory(atPath: Self.corpus.path).filter { !$0.hasPrefix(".") }.sorted()
        XCTAssertEqual(folders, FuzzTargets.names)
        for name in FuzzTargets.names { XCTAssertFalse(try files(name).isEmpty, name) }
    }

    func testCorpusReplaysWithoutCrashing() throws {
        var accepted = 0, rejected = 0
        for name in FuzzTargets.names {
            for file in try files(name) {
                let start = DispatchTime.now()
                if let error = FuzzTargets.run(name, try Data(contentsOf: file)) {
                    rejected += 1
                    let message = "\(error)"
                    XCTAssertFalse(message.isEmpty, "\(name)/\(file.lastPathComponent): an error without a message")
                    if file.lastPathComponent.hasPrefix("seed-") { print("[fuzz corpus] \(name)/\(file.lastPathComponent): \(message.prefix(160))") }
                } else {
                    accepted += 1
                }
                let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
                XCTAssertLessThan(seconds, 10, "\(name)/\(file.lastPathComponent) took \(seconds) s")
            }
        }
        print("[fuzz corpus] \(accepted) accepted, \(rejected) rejected with an error")
        XCTAssertGreaterThan(accepted, 0)
    }

    private func files(_ target: String) throws -> [URL] {
        let folder = Self.corpus.appendingPathComponent(target)
        return try FileManager.default.contentsOfDirectory(at: folder, includingPropertiesForKeys: nil)
            .filter { !$0.lastPathComponent.hasPrefix(".") }.sorted { $0.path < $1.path }
    }
}
