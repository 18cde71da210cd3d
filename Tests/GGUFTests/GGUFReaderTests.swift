import DSV2Core
import DSV2Formats
import DSV2GGUF
import DSV2Quantized
import DSV2Text
import Foundation
import TestSupport
import XCTest

/// GGUF files written by gguf-py (scripts/gguf-fixtures.py) from the checkpoint fixtures, read
/// back under Hugging Face names: configs equal to the checkpoints' own, exact values where the
/// GGUF type is exact, q8 bounds where gguf-py quantized.
final class GGUFReaderTests: XCTestCase {
    func source(_ name: String) throws -> GGUFSource { try GGUFSource(path: Fixtures.url("gguf/\(name)").path) }

    /// The checkpoint's config with what GGUF does not carry set as GGUF leaves it.
    func expectedConfig(_ fixture: String, tied: Bool = false) throws -> ModelConfig {
        var config = try ModelConfig.load(from: Fixtures.url(fixture))
        config.bosTokenId = nil
        config.eosTokenIds = []
        if tied {
            config.tieWordEmbeddings = true
        }
        return config
    }

    func values(_ tensor: StoredTensor) -> [Float] {
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        var out = [Float](repeating: 0, count: rows * columns)
        ScalarQuantization.dequantize(tensor.bytes.baseAddress!, rows: rows, columns: columns, as: tensor.type, into: &out)
        return out
    }

    /// BF16, the layout before the MLA split (one attn_kv_b, per-head key_length), one tensor per
    /// expert, q_lora_rank set, group-limited routing: every matrix's bytes equal the checkpoint's;
    /// norms and routers are F32 (as the converter writes them) holding the same values.
    func testUnsplitPerExpertBF16IsTheCheckpoint() throws {
        let gguf = try source("v2-grouped-bf16-unsplit.gguf")
        XCTAssertEqual(gguf.config, try expectedConfig("v2-grouped"))
        XCTAssertEqual(gguf.config.topkMethod, .groupLimitedGreedy)
        let hf = try HFCheckpointSource(folder: Fixtures.url("v2-grouped"))
        XCTAssertEqual(gguf.tensorNames, hf.tensorNames)
        for name in hf.tensorNames {
            let a = try gguf.tensor(name), b = try hf.tensor(name)
            XCTAssertEqual(a.shape, b.shape, name)
            let role = TensorRole.classify(name: name, shape: b.shape)
            if role == .norm || role == .router {
                XCTAssertEqual(a.type, .f32, name)
                XCTAssertEqual(values(a).map(\.bitPattern), values(b).map(\.bitPattern), name)
            } else {
                XCTAssertEqual(a.type, .bf16, name)
                XCTAssertEqual(Array(a.bytes), Array(b.bytes), name)
            }
        }
    }

    /// F32, split MLA (attn_k_b transposed, attn_v_b), no rope scaling, output absent → tied.
    func testSplitF32TiedIsTheCheckpoint() throws {
        let gguf = try source("lite-fp32-norope-f32-tied.gguf")
        XCTAssertEqual(gguf.config, try expectedConfig("lite-fp32-norope", tied: true))
        XCTAssertNil(gguf.tensorInfo(CheckpointNames.lmHead))
        let hf = try HFCheckpointSource(folder: Fixtures.url("lite-fp32-norope"))
        for name in gguf.tensorNames {
            let a = try gguf.tensor(name), b = try hf.tensor(name)
            XCTAssertEqual(a.type, .f32, name)
            XCTAssertEqual(Array(a.bytes), Array(b.bytes), name)
        }
    }

    /// gguf-py's own Q8_0 (split layout, stacked experts, k_b F16 since qk_nope = 16 is not a
    /// whole block): Q8_0 tensors arrive as q8 with gguf-py's blocks, kv_b_proj as exact f32,
    /// and the quantized engine on it stays within the q8 bound of the engine golden tests
    /// (min row cosine ≥ 0.999 of the logits against DeepSeek's fp32 golden logits) and within
    /// 2× of the error of dsv2's own q8 of the same checkpoint.
    func testGGUFPyQ8ImportsWithinQ8Bounds() throws {
        let gguf = try source("lite-greedy-q8_0.gguf")
        XCTAssertEqual(gguf.config, try expectedConfig("lite-greedy"))
        XCTAssertEqual(gguf.tensorInfo("model.layers.1.mlp.experts.3.up_proj.weight")?.type, .q8)
        XCTAssertEqual(gguf.tensorInfo(CheckpointNames.embedTokens)?.type, .q8)
        XCTAssertEqual(try gguf.tensor("model.layers.0.self_attn.kv_b_proj.weight").type, .f32)
        XCTAssertEqual(try gguf.tensor("model.layers.1.mlp.gate.weight").type, .f32)

        let golden = try GoldenCase("lite-greedy")
        let ids = try golden.inputIds
        let reference = try golden.floats("logits")
        let vocab = golden.config.vocabSize
        let fromGGUF = try QuantizedEngine(source: gguf, threads: 1).forward(tokens: ids, logits: .all, tracer: nil)
        let hf = try HFCheckpointSource(folder: golden.folder)
        let ours = try QuantizedEngine(source: QuantizingSource(hf, policy: .q8), threads: 1).forward(tokens: ids, logits: .all, tracer: nil)
        func minCosine(_ a: [Float]) -> Double {
            (0..<ids.count).map { t in
                let x = a[(t * vocab)..<((t + 1) * vocab)], y = reference[(t * vocab)..<((t + 1) * vocab)]
                var dot = 0.0, xx = 0.0, yy = 0.0
                for (p, q) in zip(x, y) { dot += Double(p) * Double(q); xx += Double(p * p); yy += Double(q * q) }
                return dot / (xx * yy).squareRoot()
            }.min()!
        }
        let ggufCosine = minCosine(fromGGUF), ourCosine = minCosine(ours)
        print("[gguf] lite-greedy logits min row cosine vs fp32 golden: gguf-py Q8_0 \(ggufCosine), dsv2 q8 \(ourCosine)")
        XCTAssertGreaterThanOrEqual(ggufCosine, 0.999)
        XCTAssertLessThanOrEqual(1 - ggufCosine, 2 * (1 - ourCosine) + 1e-5)
    }

    /// The tokenizer rebuilt from tokenizer.ggml.* (written by gguf-py's SpecialVocab) gives the
    /// ids of tiny-dsv2's tokenizer.json on every golden case, and the same chat template.
    func testTokenizerFromGGUFMatchesGoldenCases() throws {
        let file = try GGUFFile(path: Fixtures.url("gguf/tiny-dsv2-vocab.gguf").path)
        let files = try GGUFTokenizerFiles.tokenizerFiles(file)
        let tokenizer = try Tokenizer(tokenizerJSON: try XCTUnwrap(files["tokenizer.json"]),
                                      configJSON: files["tokenizer_config.json"])
        let original = try TokenizerFixtures.tokenizer("deepseek-v2-style")
        XCTAssertEqual(tokenizer.bosTokenId, 6000)
        XCTAssertEqual(tokenizer.eosTokenId, 6001)
        XCTAssertEqual(tokenizer.addBosToken, original.addBosToken)
        var checked = 0
        for row in try TokenizerFixtures.rows("deepseek-v2-style", "cases.jsonl") {
            guard let text = row["text"]?.stringValue, let ids = TokenizerFixtures.ids(row["ids"]) else { continue }
            XCTAssertEqual(try tokenizer.encode(text, addSpecialTokens: row["add_special_tokens"]?.boolValue ?? false), ids, text)
            XCTAssertEqual(tokenizer.decode(ids), original.decode(ids), text)
            checked += 1
        }
        XCTAssertGreaterThan(checked, 50)
        let messages = [ChatMessage(role: "user", content: "Hello")]
        XCTAssertEqual(try tokenizer.renderChat(messages, addGenerationPrompt: true),
                       try original.renderChat(messages, addGenerationPrompt: true))
    }

    /// Metadata keys read as llama.cpp reads them: q_lora_rank absent or 0 is a plain q_proj.
    func testAbsentOrZeroQLoraRankMeansNone() throws {
        let gguf = try source("lite-greedy-q8_0.gguf")
        XCTAssertNil(gguf.config.qLoraRank)
        XCTAssertNil(gguf.file.value("deepseek2.attention.q_lora_rank"))
        let zero = try GGUFTestFiles.rewrite("lite-greedy-q8_0.gguf") { metadata, _ in
            metadata.append(("deepseek2.attention.q_lora_rank", .uint(0, .uint32)))
        }
        XCTAssertNil(try GGUFSource(path: zero.path).config.qLoraRank)
    }
}
