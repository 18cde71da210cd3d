import DSV2GGUF
import Foundation
import TestSupport

/// GGUF files made for a test: a fixture rewritten with edited metadata or tensors.
enum GGUFTestFiles {
    static let folder = TemporaryDirectory(prefix: "dsv2-gguf-test")
    nonisolated(unsafe) static var counter = 0

    static func temporaryFile(_ name: String) -> URL {
        counter += 1
        return folder.file("\(counter)-\(name)")
    }

    /// `fixture` (in Tests/Fixtures/gguf) written again by `GGUFWriter` after `edit` changed its
    /// metadata and tensor plans.
    static func rewrite(_ fixture: String,
                        _ edit: (inout [(String, GGUFValue)], inout [GGUFTensorPlan]) -> Void) throws -> URL {
        let file = try GGUFFile(path: Fixtures.url("gguf/\(fixture)").path)
        var metadata = file.metadata.map { ($0.key, $0.value) }
        var plans = file.tensors.map { info in
            GGUFTensorPlan(name: info.name, dimensions: info.dimensions, type: info.type) { Array(file.bytes(of: info)) }
        }
        edit(&metadata, &plans)
        let url = temporaryFile(fixture)
        try GGUFWriter.write(metadata: metadata, tensors: plans, to: url)
        return url
    }

    /// The tensor data bytes of every tensor of a file, by name.
    static func tensorData(_ url: URL) throws -> [String: [UInt8]] {
        let file = try GGUFFile(path: url.path)
        return Dictionary(uniqueKeysWithValues: file.tensors.map { ($0.name, Array(file.bytes(of: $0))) })
    }
}
