import DSV2Container
import DSV2Converter
import DSV2Core
import DSV2Formats
import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// The same stored tensor types give bit-identical results whichever way the model was loaded:
/// quantized in memory from the Hugging Face folder, or from a converted `.dsv2` container
/// (raw: zero-copy from the mapping; zstd: decompressed).
final class EngineLoadingTests: XCTestCase {
    func testHuggingFaceInMemoryAndContainerAreBitIdentical() throws {
        let folder = TemporaryDirectory(prefix: "engine-loading")
        for (fixture, preset) in [("v2-grouped", "q4"), ("tiny-dsv2", "q8"), ("lite-fp32-norope", "f32")] {
            let policy = try XCTUnwrap(QuantizationPolicy.preset(preset))
            let ids = try EngineTestSupport.inputIds(fixture)
            let inMemory = try EngineTestSupport.engine(fixture, preset: preset)
            let expected = try inMemory.forward(tokens: ids, logits: .all)

            let (source, provenance) = try Converter.openSource(Fixtures.url(fixture))
            let container = folder.file("\(fixture)-\(preset).dsv2")
            _ = try Converter.convert(source: source, provenance: provenance, to: container,
                                      options: ConversionOptions(policy: policy, threads: 2))
            let fromContainer = try QuantizedEngine(source: try ContainerReader(path: container.path), threads: 2)
            XCTAssertEqual(fromContainer.weights.typeSummary, inMemory.weights.typeSummary)
            let actual = try fromContainer.forward(tokens: ids, logits: .all)
            let same = actual.count == expected.count && zip(actual, expected).allSatisfy { $0.bitPattern == $1.bitPattern }
            XCTAssertTrue(same, "\(fixture) \(preset): container and in-memory loading differ")
            print("[engine-loading] \(fixture) \(preset): HF in-memory vs container bit-identical: \(same)")
        }
    }

    func testMissingTensorIsNamed() throws {
        final class Dropping: WeightSource {
            let base: WeightSource, dropped: String
            init(_ base: WeightSource, dropping: String) { self.base = base; dropped = dropping }
            var configJSON: Data { base.configJSON }
            var tokenizerFiles: [String: Data] { base.tokenizerFiles }
            var tensorNames: [String] { base.tensorNames.filter { $0 != dropped } }
            var location: String { base.location }
            func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? { name == dropped ? nil : base.tensorInfo(name) }
            func tensor(_ name: String) throws -> StoredTensor { try base.tensor(name) }
        }
        let name = CheckpointNames.layer(1).kvBProj
        let source = Dropping(try HFCheckpointSource(folder: Fixtures.url("lite-greedy")), dropping: name)
        XCTAssertThrowsError(try QuantizedEngine(source: source, threads: 1)) { error in
            XCTAssertEqual(error as? EngineLoadError, .missingTensor(source: Fixtures.url("lite-greedy").path, tensor: name))
        }
    }

    /// A tensor the config does not describe is an error for every source (a container's table
    /// is not filtered like a Hugging Face folder's), naming it and why it is not expected.
    func testUnexpectedTensorIsNamed() throws {
        final class Adding: WeightSource {
            let base: WeightSource, extra: String, shape: [Int]
            init(_ base: WeightSource, adding extra: String, shape: [Int]) { self.base = base; self.extra = extra; self.shape = shape }
            var configJSON: Data { base.configJSON }
            var tokenizerFiles: [String: Data] { base.tokenizerFiles }
            var tensorNames: [String] { base.tensorNames + [extra] }
            func tensorInfo(_ name: String) -> (type: WeightType, shape: [Int])? { name == extra ? (.f32, shape) : base.tensorInfo(name) }
            func tensor(_ name: String) throws -> StoredTensor { try base.tensor(name) }
        }
        let base = try HFCheckpointSource(folder: Fixtures.url("lite-greedy"))
        let name = CheckpointNames.layer(0).sharedUpProj   // layer 0 is dense
        XCTAssertThrowsError(try QuantizedEngine(source: Adding(base, adding: name, shape: [64, 64]), threads: 1)) { error in
            guard case let .unexpectedTensor(_, tensor, reason)? = error as? EngineLoadError else { return XCTFail("\(error)") }
            XCTAssertEqual(tensor, name)
            XCTAssertTrue("\(error)".contains(name) && reason.contains("no shared experts"), "\(error)")
        }
    }

    /// A thread count beyond any machine is clamped, not a thread per request until the system
    /// refuses (a precondition failure in the pool).
    func testThreadCountIsClamped() throws {
        let engine = try EngineTestSupport.engine("lite-greedy", preset: "q8")
        engine.setThreadCount(.max)
        XCTAssertEqual(engine.threadCount, QuantizedEngine.maximumThreadCount)
        engine.setThreadCount(1)
        XCTAssertEqual(engine.threadCount, 1)
    }
}
