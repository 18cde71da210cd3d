import XCTest
import DSV2
import TestSupport

/// A raw container's load-time check runs beside the engine's set-up and first forward
/// (`BackgroundTensorCheck`): the engine is built at once, and no forward returns a result until
/// the check has passed; a damaged tensor is refused by name on every call.
final class ModelVerificationTests: XCTestCase {
    /// The embedded tiny-dsv2 written again as a raw container, with one byte of `tensor` flipped.
    private func damagedCopy(_ tensor: String?, in scratch: TemporaryDirectory) throws -> (URL, ContainerTensorEntry?) {
        let source = try ContainerReader(path: try DefaultModel.locate().path)
        let copy = scratch.file("model.dsv2")
        let writer = try ContainerWriter(destination: copy, overwrite: true)
        try writer.addFile(name: "config.json", data: source.configJSON)
        for name in source.tensorNames { try writer.add(TensorCodec.encode(try source.tensor(name), options: .none)) }
        _ = try writer.finish(quantization: source.metadata.quantization, provenance: source.metadata.provenance)
        guard let tensor else { return (copy, nil) }
        let entry = try XCTUnwrap(try ContainerReader(path: copy.path).entry(tensor))
        XCTAssertEqual(entry.compression, .none)
        try flipByte(copy, at: entry.offset + 5)   // in the quants plane: a finite value whatever the flip
        return (copy, entry)
    }

    func testDamagedTensorIsRefusedByNameBeforeAnyResult() throws {
        let scratch = TemporaryDirectory()
        let (url, entry) = try damagedCopy("model.layers.1.mlp.experts.5.down_proj.weight", in: scratch)
        let model = try Model.open(url.path)
        let engine = try model.makeQuantizedEngine(threads: 2)
        XCTAssertNotNil(engine.pendingWeightCheck)
        for _ in 0..<2 {
            XCTAssertThrowsError(try engine.forward(tokens: [1, 2, 3], logits: .last)) { error in
                guard case let .checksumMismatch(path, tensor, expected, _)? = error as? ContainerError else { return XCTFail("\(error)") }
                XCTAssertEqual([path, tensor, expected], [url.path, entry!.name, entry!.checksum])
            }
        }
        let sequence = engine.makeSequence()
        XCTAssertThrowsError(try engine.forward(batch: [BatchEntry(sequence: sequence, tokens: [1, 2])]))
        // Unchecked, the same file runs (the check is what refuses it).
        XCTAssertNoThrow(try Model.open(url.path, verify: false).makeQuantizedEngine(threads: 2).forward(tokens: [1, 2, 3], logits: .last))
    }

    /// A sound container: the check passes once, then is gone; results are bit-identical to an
    /// unchecked load, for the first forward and the ones after it.
    func testSoundContainerGivesTheSameResultsAsUnchecked() throws {
        let scratch = TemporaryDirectory()
        let (url, _) = try damagedCopy(nil, in: scratch)
        let checked = try Model.open(url.path).makeQuantizedEngine(threads: 2)
        let unchecked = try Model.open(url.path, verify: false).makeQuantizedEngine(threads: 2)
        XCTAssertNil(unchecked.pendingWeightCheck)
        for tokens: [Int32] in [[1, 2, 3, 4], [5], [6]] {
            XCTAssertEqual(try checked.forward(tokens: tokens, logits: .all), try unchecked.forward(tokens: tokens, logits: .all))
            XCTAssertNil(checked.pendingWeightCheck)
        }
    }
}
