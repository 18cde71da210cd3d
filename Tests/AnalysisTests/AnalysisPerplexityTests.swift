import XCTest
import TestSupport
import DSV2Analysis
import DSV2Reference

final class AnalysisPerplexityTests: XCTestCase {
    func testWindowsFollowTheConvention() {
        XCTAssertEqual(PerplexityWindows.ranges(tokenCount: 10, ctx: 4), [0..<4, 4..<8, 8..<10])
        XCTAssertEqual(PerplexityWindows.scoredCount(tokenCount: 10, ctx: 4), 3 + 3 + 1)
        XCTAssertEqual(PerplexityWindows.ranges(tokenCount: 9, ctx: 4).last, 8..<9)  // 1-token window scores nothing
        XCTAssertEqual(PerplexityWindows.scoredCount(tokenCount: 9, ctx: 4), 6)
        XCTAssertEqual(PerplexityWindows.ranges(tokenCount: 0, ctx: 4), [])
    }

    func testAccumulatorIsFloat64() {
        var acc = PerplexityAccumulator()
        XCTAssertTrue(acc.meanNLL.isNaN)
        // 1e8 + many small values: float32 accumulation would drop the small ones entirely.
        acc.add(1e8)
        for _ in 0..<1000 { acc.add(0.001) }
        XCTAssertEqual(acc.sumNLL, 1e8 + 1, accuracy: 1e-4)  // float32 would be off by ~1 (its ulp at 1e8 is 8)
        XCTAssertEqual(acc.count, 1001)
        var two = PerplexityAccumulator()
        two.add(log(4)); two.add(log(16))
        XCTAssertEqual(two.perplexity, 8, accuracy: 1e-12)
    }

    /// The evaluator against a direct computation with the tiny model (windows of 5 over 13 ids,
    /// float64 log-softmax written out here), then a base file round trip: same engine → KL 0,
    /// ratio 1; and the base refuses another ctx or text.
    func testEvaluatorMatchesDirectComputationAndBaseRoundTrip() throws {
        let model = try ReferenceModel(checkpoint: Fixtures.url("tiny-dsv2"))
        let tokens: [Int32] = [84, 301, 17, 999, 5000, 42, 42, 7, 1200, 66, 3, 800, 2500]
        let vocab = model.config.vocabSize
        var sum = 0.0, count = 0
        for start in stride(from: 0, to: tokens.count, by: 5) {
            let window = Array(tokens[start ..< min(start + 5, tokens.count)])
            model.resetCache()
            let logits = try model.forward(tokens: window, logits: .all)
            for i in 0 ..< window.count - 1 {
                let row = logits[i * vocab ..< (i + 1) * vocab].map(Double.init)
                let m = row.max()!
                let logZ = m + log(row.reduce(0) { $0 + exp($1 - m) })
                sum += logZ - row[Int(window[i + 1])]
                count += 1
            }
        }
        let directMean = sum / Double(count)

        let folder = TemporaryDirectory()
        let baseURL = folder.file("base.bin")
        let writer = try LogitsBaseWriter(url: baseURL, vocab: vocab, ctx: 5, tokens: tokens)
        let first = try PerplexityEvaluator.run(model: model, tokens: tokens, ctx: 5, saveBase: writer)
        XCTAssertEqual(first.scoredTokens, 10)
        XCTAssertEqual(first.windows, 3)
        // Same float inputs, the same float64 formula up to summation order: 1e-12 relative is ample.
        XCTAssertEqual(first.meanNLL, directMean, accuracy: 1e-12 * directMean)
        XCTAssertEqual(first.perplexity, exp(directMean), accuracy: 1e-10 * exp(directMean))
        let size = try FileManager.default.attributesOfItem(atPath: baseURL.path)[.size] as! Int
        XCTAssertEqual(size, 64 + 10 * vocab * 4)

        let base = try LogitsBaseFile(url: baseURL)
        XCTAssertEqual(base.rows, 10)
        XCTAssertEqual(base.meanNLL, first.meanNLL)
        let second = try PerplexityEvaluator.run(model: model, tokens: tokens, ctx: 5, base: base)
        XCTAssertEqual(second.base?.klMean, 0)
        XCTAssertEqual(second.base?.klMax, 0)
        XCTAssertEqual(second.base?.top1Agreement, 1)
        XCTAssertEqual(second.base?.perplexityRatio, 1)

        XCTAssertThrowsError(try PerplexityEvaluator.run(model: model, tokens: tokens, ctx: 6, base: base)) { error in
            XCTAssertTrue("\(error)".contains("it was made with -c/--ctx-size 5, this run uses -c/--ctx-size 6"), "\(error)")
        }
        var other = tokens; other[3] = 1000
        XCTAssertThrowsError(try PerplexityEvaluator.run(model: model, tokens: other, ctx: 5, base: base)) { error in
            XCTAssertTrue("\(error)".contains("different text or tokenizer"), "\(error)")
        }
        XCTAssertThrowsError(try PerplexityEvaluator.run(model: model, tokens: [5], ctx: 5)) { error in
            XCTAssertEqual(error as? PerplexityError, .nothingToScore(tokens: 1, ctx: 5))
        }
    }

    func testBaseFileRejectsCorruption() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("base.bin")
        let writer = try LogitsBaseWriter(url: url, vocab: 3, ctx: 4, tokens: [1, 2, 3])
        try [Float](arrayLiteral: 1, 2, 3).withUnsafeBufferPointer { try writer.append(row: $0) }
        try writer.finish(meanNLL: 0.5)
        let written = try LogitsBaseFile(url: url)
        withExtendedLifetime(written) { XCTAssertEqual(try? written.row(0).map { $0 }, [1, 2, 3]) }
        let bytes = try Data(contentsOf: url)
        try bytes.dropLast(4).write(to: url)
        XCTAssertThrowsError(try LogitsBaseFile(url: url)) { XCTAssertTrue("\($0)".contains("truncated?"), "\($0)") }
        var bad = bytes; bad[0] = 0x41
        try bad.write(to: url)
        XCTAssertThrowsError(try LogitsBaseFile(url: url)) { XCTAssertTrue("\($0)".contains("bad magic"), "\($0)") }
        // No temporary file is left behind by an abandoned writer.
        do { _ = try LogitsBaseWriter(url: folder.file("abandoned.bin"), vocab: 3, ctx: 4, tokens: [1]) }
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: folder.url.path).filter { $0.hasPrefix(".") }
        XCTAssertEqual(leftovers, [])
    }
}
