import DSV2Core
import DSV2Formats
import DSV2GGUF
import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// dsv2 → GGUF → dsv2: q8/q4 blocks travel unchanged, so the model read back computes exactly
/// what the dsv2 model computes, and a second export is byte-identical.
final class GGUFExportTests: XCTestCase {
    /// tiny-dsv2 with the q4 preset, in memory (bit-identical to the q4 container: FORMAT.md).
    func tinyQ4() throws -> QuantizingSource {
        QuantizingSource(try HFCheckpointSource(folder: Fixtures.url("tiny-dsv2")), policy: .q4)
    }

    func values(_ tensor: StoredTensor) -> [UInt32] {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        var out = [Float](repeating: 0, count: rows * columns)
        ScalarQuantization.dequantize(tensor.bytes.baseAddress!, rows: rows, columns: columns, as: tensor.type, into: &out)
        return out.map(\.bitPattern)
    }

    func testTinyQ4ExportReadsBackWithIdenticalLogits() throws {
        let source = try tinyQ4()
        let url = GGUFTestFiles.temporaryFile("tiny-q4.gguf")
        let summary = try GGUFExporter.export(source, name: "tiny-dsv2", to: url)
        XCTAssertEqual(summary.typeCounts["Q4_0"].map { $0 > 0 }, true)
        let gguf = try GGUFSource(path: url.path)
        let original = try ModelConfig.decode(source.configJSON)
        XCTAssertEqual(gguf.config, original)
        XCTAssertEqual(gguf.file.value("general.file_type")?.intValue, 2)   // MOSTLY_Q4_0
        XCTAssertEqual(gguf.file.tensor("blk.1.ffn_up_exps.weight")?.type, .q4_0)
        XCTAssertEqual(gguf.file.tensor("token_embd.weight")?.type, .q8_0)
        XCTAssertEqual(gguf.file.tensor("blk.1.ffn_gate_inp.weight")?.type, .f32)
        XCTAssertEqual(gguf.file.tensor("blk.0.attn_v_b.weight")?.dimensions, [64, 32, 6])
        XCTAssertEqual(gguf.file.tensor("blk.0.attn_k_b.weight")?.dimensions, [32, 64, 6])
        XCTAssertEqual(gguf.file.tensor("blk.0.attn_k_b.weight")?.type, .f32)
        // Every tensor: same type and same values; every one but the rebuilt kv_b_proj the same bytes.
        for name in source.tensorNames {
            let a = try gguf.tensor(name), b = try source.tensor(name)
            XCTAssertEqual(a.type, b.type, name)
            XCTAssertEqual(values(a), values(b), name)
            if !name.hasSuffix("kv_b_proj.weight") { XCTAssertEqual(Array(a.bytes), Array(b.bytes), name) }
        }
        // The tokenizer survives: same ids for a sentence, same template.
        XCTAssertEqual(gguf.tokenizerFiles.keys.sorted(), ["tokenizer.json", "tokenizer_config.json"])

        let ids = try GoldenCase("tiny-dsv2").inputIds
        let expected = try QuantizedEngine(source: source, threads: 1).forward(tokens: ids, logits: .all, tracer: nil)
        let actual = try QuantizedEngine(source: gguf, threads: 1).forward(tokens: ids, logits: .all, tracer: nil)
        XCTAssertEqual(actual.map(\.bitPattern), expected.map(\.bitPattern), "logits from the GGUF differ from the q4 model's")
    }

    /// GGUF → dsv2 (as read) → GGUF: every tensor's data is byte-identical, and so is the metadata.
    func testRoundTripIsByteIdentical() throws {
        let first = GGUFTestFiles.temporaryFile("tiny-q4-first.gguf")
        try GGUFExporter.export(try tinyQ4(), name: "tiny-dsv2", to: first)
        let second = GGUFTestFiles.temporaryFile("tiny-q4-second.gguf")
        try GGUFExporter.export(try GGUFSource(path: first.path), name: "tiny-dsv2", to: second)
        let a = try GGUFTestFiles.tensorData(first), b = try GGUFTestFiles.tensorData(second)
        XCTAssertEqual(a.keys.sorted(), b.keys.sorted())
        for (name, bytes) in a { XCTAssertEqual(bytes, b[name], name) }
        XCTAssertEqual(try Data(contentsOf: first), try Data(contentsOf: second))
    }

    /// gguf-py's Q8_0 file → dsv2 → GGUF: the Q8_0 tensors come back with gguf-py's bytes (its
    /// attn_k_b/attn_v_b, which dsv2 holds as one exact f32 kv_b_proj, are exact F32).
    func testGGUFPyQ8RoundTripKeepsItsBlocks() throws {
        let original = Fixtures.url("gguf/lite-greedy-q8_0.gguf")
        let out = GGUFTestFiles.temporaryFile("lite-greedy-again.gguf")
        try GGUFExporter.export(try GGUFSource(path: original.path), name: "lite-greedy", to: out)
        let a = try GGUFTestFiles.tensorData(original), b = try GGUFTestFiles.tensorData(out)
        let file = try GGUFFile(path: original.path)
        var compared = 0
        for info in file.tensors where info.type == .q8_0 && !info.name.contains("attn_v_b") {
            XCTAssertEqual(a[info.name], b[info.name], info.name)
            compared += 1
        }
        XCTAssertGreaterThan(compared, 10)
    }

    /// Configs GGUF cannot express are refused naming the field.
    func testUnexpressibleConfigIsRefused() throws {
        var config = try ModelConfig.load(from: Fixtures.url("tiny-dsv2"))
        config.moeLayerFreq = 2
        XCTAssertThrowsError(try GGUFModelMetadata.metadata(for: config)) { XCTAssertTrue("\($0)".contains("moe_layer_freq"), "\($0)") }
        config.moeLayerFreq = 1
        config.ropeScaling?.mscale = 1
        XCTAssertThrowsError(try GGUFModelMetadata.metadata(for: config)) { XCTAssertTrue("\($0)".contains("mscale"), "\($0)") }
    }
}
