import XCTest
import DSV2Container
import DSV2Quantized
import DSV2Reference
import TestSupport

final class SynthCommandTests: XCTestCase {
    /// `dsv2 synth --format hf` writes a sharded folder the reference loads; the same seed with a
    /// different thread count gives identical bytes.
    func testHuggingFaceOutputLoadsAndIsReproducible() throws {
        let folder = TemporaryDirectory(prefix: "dsv2-synth")
        let config = Fixtures.url("v2-grouped/config.json").path
        let a = folder.file("a"), b = folder.file("b")
        for (out, threads) in [(a, "1"), (b, "2")] {
            let result = try DSV2Process.run(["synth", "--preset", config, "--layers", "3", "--format", "hf", "--seed", "11",
                                          "--shard-size", "100K", "--threads", threads, "--quiet", "-o", out.path])
            XCTAssertEqual(result.status, 0, result.stderr)
        }
        let names = try FileManager.default.contentsOfDirectory(atPath: a.path).sorted()
        XCTAssertTrue(names.contains("model.safetensors.index.json"))
        XCTAssertTrue(names.contains("config.json"))
        for name in names {
            XCTAssertEqual(try Data(contentsOf: a.appendingPathComponent(name)), try Data(contentsOf: b.appendingPathComponent(name)), name)
        }
        let model = try ReferenceModel(checkpoint: a)
        XCTAssertEqual(model.config.numHiddenLayers, 3)
        let logits = try model.forward(tokens: [1, 2, 3, 4], logits: .last)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
    }

    /// `--format dsv2 --quant q4` writes a container the quantized engine runs; its greedy tokens
    /// are finite logits of the right size.
    func testContainerRunsOnTheQuantizedEngine() throws {
        let folder = TemporaryDirectory(prefix: "dsv2-synth")
        let out = folder.file("m.dsv2")
        let result = try DSV2Process.run(["synth", "--preset", Fixtures.url("v2-grouped/config.json").path, "--quant", "q4",
                                      "--seed", "2", "--quiet", "-o", out.path])
        XCTAssertEqual(result.status, 0, result.stderr)
        let engine = try QuantizedEngine(source: ContainerReader(path: out.path), threads: 2)
        let logits = try engine.forward(tokens: [5, 6, 7], logits: .all)
        XCTAssertEqual(logits.count, 3 * engine.config.vocabSize)
        XCTAssertTrue(logits.allSatisfy(\.isFinite))
        // Refuses to overwrite without --force, and names the output.
        let again = try DSV2Process.run(["synth", "--preset", "v2-lite", "--layers", "1", "--quant", "q4", "--quiet", "-o", out.path])
        XCTAssertNotEqual(again.status, 0)
        XCTAssertTrue(again.stderr.contains(out.path), again.stderr)
    }

    func testBadArgumentsAreReported() throws {
        let folder = TemporaryDirectory(prefix: "dsv2-synth")
        let badQuant = try DSV2Process.run(["synth", "--preset", "v2-lite", "--quant", "q3", "-o", folder.file("x.dsv2").path])
        XCTAssertNotEqual(badQuant.status, 0)
        XCTAssertTrue(badQuant.stderr.contains("q3"), badQuant.stderr)
        let badExperts = try DSV2Process.run(["synth", "--preset", "v2", "--experts", "12", "-o", folder.file("y.dsv2").path])
        XCTAssertNotEqual(badExperts.status, 0)
        XCTAssertTrue(badExperts.stderr.contains("n_group"), badExperts.stderr)
    }
}
