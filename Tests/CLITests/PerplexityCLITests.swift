import DSV2Analysis
import DSV2Core
import DSV2Text
import Foundation
import TestSupport
import XCTest

/// `dsv2 perplexity` end to end with the tiny-dsv2 fixture (model + tokenizer).
final class PerplexityCLITests: XCTestCase {
    let model = Fixtures.url("tiny-dsv2").path

    /// A few hundred tokens of plain English (written for this test), so each run takes well under a second.
    static let text = """
    The old lighthouse keeper wrote in his book every evening. He noted the wind, the colour of the \
    sea and the ships that passed before the sun went down. Most days nothing happened, and he wrote \
    that too, because a record with gaps is worse than a dull one.
    When the storm came in November, the lamp failed twice. He climbed the stairs with a candle, \
    cleaned the glass and turned the great lens by hand until morning. Nobody thanked him; the ships \
    simply went on their way, which was the point.
    Years later a student found the books in a box and read them from the first page to the last. \
    She said that the weather was not the interesting part. The interesting part was a man who kept \
    his promise to write something down every single day, even when there was nothing to say.
    """

    private func writeText(_ scratch: TemporaryDirectory) throws -> String {
        let path = scratch.path("text.txt")
        try Data(Self.text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    /// The command's figure against an independent computation: the text encoded here, each
    /// window's logits taken from `dsv2 dump`, −log p summed here in float64 from the definition.
    /// Both read the same fp32 logits, so they differ only by summation order (~1e-15 relative);
    /// 1e-6 leaves room for nothing but a real difference (a wrong window, an off-by-one target).
    func testPerplexityMatchesAnIndependentComputation() throws {
        let scratch = TemporaryDirectory()
        let textPath = try writeText(scratch)
        let ctx = 64
        let r = try DSV2Process.run(["perplexity", "--model", model, "--engine", "reference", "--text", textPath, "-c", "\(ctx)", "--json"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let json = try r.json()
        XCTAssertEqual(json["schema"] as? String, "dsv2.perplexity")
        let result = try XCTUnwrap(json["result"] as? [String: Any])

        let tokens = try Tokenizer.load(from: Fixtures.url("tiny-dsv2")).encode(Self.text, addSpecialTokens: false)
        XCTAssertGreaterThan(tokens.count, 2 * ctx, "the text should span several windows")
        XCTAssertFalse(tokens.contains(6000) || tokens.contains(6001), "no BOS/EOS")
        var sum = 0.0, scored = 0, windows = 0
        for start in stride(from: 0, to: tokens.count, by: ctx) {
            let window = Array(tokens[start ..< min(start + ctx, tokens.count)])
            windows += 1
            guard window.count > 1 else { continue }
            let dump = scratch.path("window-\(start).st")
            let d = try DSV2Process.run(["dump", "--model", model, "--engine", "reference", "--ids", window.map(String.init).joined(separator: ","),
                                         "--trace", "logits", "-o", dump])
            XCTAssertEqual(d.status, 0, d.stderr)
            let file = try SafetensorsFile(url: URL(fileURLWithPath: dump))
            let logits = try file.floats("logits")
            let vocab = try file.info("logits").shape[1]
            for i in 0 ..< window.count - 1 {  // row i predicts token i+1; the window's first token is not scored
                let row = logits[i * vocab ..< (i + 1) * vocab].map(Double.init)
                let m = row.max()!
                sum += m + log(row.reduce(0) { $0 + exp($1 - m) }) - row[window[i + 1]]
                scored += 1
            }
        }
        let mean = sum / Double(scored)
        XCTAssertEqual(result["tokens"] as? Int, tokens.count)
        XCTAssertEqual(result["scored_tokens"] as? Int, scored)
        XCTAssertEqual(result["windows"] as? Int, windows)
        XCTAssertEqual(result["ctx"] as? Int, ctx)
        let meanNLL = try XCTUnwrap(result["mean_nll"] as? Double)
        let perplexity = try XCTUnwrap(result["perplexity"] as? Double)
        XCTAssertEqual(meanNLL, mean, accuracy: 1e-6 * mean)
        XCTAssertEqual(perplexity, exp(mean), accuracy: 1e-6 * exp(mean))
        // A trained model on plain English: far better than uniform (6021) and not implausibly good.
        XCTAssertTrue(perplexity > 5 && perplexity < 500, "perplexity \(perplexity)")
        print("tiny-dsv2 reference perplexity on the test text (\(tokens.count) tokens, ctx \(ctx)): \(perplexity)")
    }

    func testSaveBaseThenKLBaseOnTheSameEngineGivesZeroKLAndRatioOne() throws {
        let scratch = TemporaryDirectory()
        let textPath = try writeText(scratch)
        let base = scratch.path("base.bin")
        let save = try DSV2Process.run(["perplexity", "--model", model, "--engine", "reference", "--text", textPath, "-c", "100", "--save-base", base])
        XCTAssertEqual(save.status, 0, save.stderr)
        XCTAssertTrue(save.stdout.contains("perplexity "), save.stdout)
        let tokens = try Tokenizer.load(from: Fixtures.url("tiny-dsv2")).encode(Self.text, addSpecialTokens: false).count
        let scored = PerplexityWindows.scoredCount(tokenCount: tokens, ctx: 100)
        let size = try FileManager.default.attributesOfItem(atPath: base)[.size] as! Int
        XCTAssertEqual(size, 64 + scored * 6021 * 4, "header + rows × vocab × f32")

        let again = try DSV2Process.run(["perplexity", "--model", model, "--engine", "reference", "--text", textPath, "-c", "100", "--kl-base", base, "--json"])
        XCTAssertEqual(again.status, 0, again.stderr)
        let result = try XCTUnwrap(try again.json()["result"] as? [String: Any])
        let comparison = try XCTUnwrap(result["base"] as? [String: Any])
        XCTAssertEqual(comparison["kl_mean"] as? Double, 0)
        XCTAssertEqual(comparison["kl_max"] as? Double, 0)
        XCTAssertEqual(comparison["top1_agreement"] as? Double, 1)
        XCTAssertEqual(comparison["perplexity_ratio"] as? Double, 1)
        XCTAssertEqual(comparison["base_perplexity"] as? Double, result["perplexity"] as? Double)

        // The base is tied to its text and ctx.
        let otherCtx = try DSV2Process.run(["perplexity", "--model", model, "--text", textPath, "-c", "64", "--kl-base", base])
        XCTAssertEqual(otherCtx.status, 2)
        XCTAssertTrue(otherCtx.stderr.contains("it was made with -c/--ctx-size 100, this run uses -c/--ctx-size 64"), otherCtx.stderr)
        let otherTextPath = scratch.path("other.txt")
        try Data((Self.text + " And one more line.").utf8).write(to: URL(fileURLWithPath: otherTextPath))
        let otherText = try DSV2Process.run(["perplexity", "--model", model, "--text", otherTextPath, "-c", "100", "--kl-base", base])
        XCTAssertEqual(otherText.status, 2)
        XCTAssertTrue(otherText.stderr.contains("made from a different text or tokenizer"), otherText.stderr)
    }

    func testQuantizedEngineAgainstTheReferenceBase() throws {
        let scratch = TemporaryDirectory()
        let textPath = try writeText(scratch)
        let base = scratch.path("base.bin")
        XCTAssertEqual(try DSV2Process.run(["perplexity", "--model", model, "--engine", "reference", "--text", textPath,
                                            "-c", "128", "--save-base", base]).status, 0)
        for quant in ["q8", "q4"] {
            let r = try DSV2Process.run(["perplexity", "--model", model, "--text", textPath, "-c", "128",
                                         "--engine", "quantized", "--quant", quant, "--kl-base", base, "--json"])
            XCTAssertEqual(r.status, 0, r.stderr)
            let result = try XCTUnwrap(try r.json()["result"] as? [String: Any])
            let b = try XCTUnwrap(result["base"] as? [String: Any])
            let kl = try XCTUnwrap(b["kl_mean"] as? Double), ratio = try XCTUnwrap(b["perplexity_ratio"] as? Double)
            let top1 = try XCTUnwrap(b["top1_agreement"] as? Double)
            print(String(format: "tiny-dsv2 %@ vs reference (test text, ctx 128): KL mean %.3e max %.3e, top-1 %.1f%%, ppl %.4f, ratio %.5f",
                         quant, kl, b["kl_max"] as! Double, top1 * 100, result["perplexity"] as! Double, ratio))
            // Quantization moves the distribution a little but not a lot (q4 on this trained model:
            // KL ~1e-2; a broken kernel gives KL ≫ 0.1 and a ratio far from 1).
            XCTAssertGreaterThan(kl, 0)
            XCTAssertLessThan(kl, quant == "q8" ? 0.01 : 0.1)
            XCTAssertEqual(ratio, 1, accuracy: quant == "q8" ? 0.02 : 0.15)
            XCTAssertGreaterThan(top1, quant == "q8" ? 0.9 : 0.75)
        }
    }

    func testClearErrors() throws {
        let scratch = TemporaryDirectory()
        let textPath = try writeText(scratch)
        func check(_ arguments: [String], _ message: String, line: UInt = #line) throws {
            let r = try DSV2Process.run(["perplexity"] + arguments)
            XCTAssertEqual(r.status, 2, line: line)
            XCTAssertTrue(r.stderr.contains(message), r.stderr, line: line)
        }
        // lite-greedy has no tokenizer.json.
        try check(["--model", Fixtures.url("lite-greedy").path, "--text", textPath], "has no tokenizer.json")
        try check(["--model", model, "--text", scratch.path("missing.txt")], "missing.txt: no such file or folder")
        try check(["--model", model, "--text", scratch.url.path], "is a folder, not a file")
        try check(["--model", model, "--text", textPath, "-c", "1"], "-c/--ctx-size 1 is outside 2 ... 1024")
        try check(["--model", model, "--text", textPath, "-c", "2000"], "-c/--ctx-size 2000 is outside 2 ... 1024")
        try check(["--model", model, "--text", textPath, "--engine", "reference", "--quant", "q4"],
                  "--quant q4 needs the quantized engine")
        try Data("not a base file, but long enough to hold a header of sixty-four bytes....".utf8)
            .write(to: URL(fileURLWithPath: scratch.path("junk.bin")))
        try check(["--model", model, "--text", textPath, "--kl-base", scratch.path("junk.bin")], "bad magic")
    }
}
