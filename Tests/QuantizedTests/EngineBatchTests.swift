import DSV2Core
import DSV2Quantized
import Foundation
import TestSupport
import XCTest

/// `forward(batch:)`: a sequence's logits in a batch must equal, bit for bit, the same tokens
/// run alone. Every product row is computed by the same kernel whether the batch holds one token
/// or many (mat-mat ≡ mat-vec per row), attention reads only the row's own cache, and the MoE
/// sums each token's experts in its own slot order: exact equality is the contract.
final class EngineBatchTests: XCTestCase {
    /// Four sequences with different prompts: one prefilled in one pass, one in chunks while the
    /// others decode, one joining late, one leaving early; each compared with a lone run.
    func testBatchedSequencesMatchLoneRuns() throws {
        for (fixture, preset) in [("tiny-dsv2", "q8"), ("v2-grouped", "q4"), ("lite-greedy", "f32")] {
            let engine = try EngineTestSupport.engine(fixture, preset: preset)
            let ids = try EngineTestSupport.inputIds(fixture)
            let vocab = Int32(engine.config.vocabSize)
            let prompts: [[Int32]] = [ids, Array(ids.prefix(3)), Array(ids.reversed()), [ids[0]] + ids.map { ($0 &* 7) % vocab }]
            let steps = 5
            // Alone: the engine's own sequence, prompt then greedy decode steps. Sequence 2's
            // prompt goes in the 2-token pieces the batch feeds it (a piece's attention form
            // depends on its length and prefix, so a whole-prompt pass may round differently).
            var alone: [[[Float]]] = []
            for (s, prompt) in prompts.enumerated() {
                engine.resetCache()
                var rows: [[Float]] = []
                if s == 2 {
                    engine.prefillChunkTokens = 2
                    rows.append(try engine.forward(tokens: prompt, logits: .last))
                    engine.prefillChunkTokens = QuantizedEngine.defaultPrefillChunkTokens
                } else {
                    rows.append(try engine.forward(tokens: prompt, logits: .last))
                }
                for _ in 0..<steps {
                    rows.append(try engine.forward(tokens: [Int32(engineArgmax(rows.last![...]))], logits: .last))
                }
                alone.append(rows)
            }

            // Batched: sequence 0 prefills whole at step 0, sequence 1 joins at step 2, sequence 2
            // prefills two tokens per step (three for an odd last piece: `prefillPiece`), sequence 3 leaves after two decode steps.
            let sequences = prompts.map { _ in engine.makeSequence() }
            var fed = [Int](repeating: 0, count: prompts.count)         // prompt tokens fed
            var rows: [[[Float]]] = prompts.map { _ in [] }
            var step = 0
            while rows.indices.contains(where: { rows[$0].count < (($0 == 3) ? 3 : steps + 1) }) {
                var batch: [BatchEntry] = []
                var members: [Int] = []
                for s in prompts.indices {
                    if s == 1 && step < 2 { continue }
                    if rows[s].count == (s == 3 ? 3 : steps + 1) { continue }
                    let prompt = prompts[s]
                    if fed[s] < prompt.count {
                        let take = s == 2 ? QuantizedEngine.prefillPiece(remaining: prompt.count - fed[s], budget: 2) : prompt.count - fed[s]
                        let chunk = Array(prompt[fed[s] ..< fed[s] + take])
                        fed[s] += take
                        batch.append(BatchEntry(sequence: sequences[s], tokens: chunk, logits: fed[s] == prompt.count ? .last : .none))
                    } else {
                        batch.append(BatchEntry(sequence: sequences[s], tokens: [Int32(engineArgmax(rows[s].last![...]))]))
                    }
                    members.append(s)
                }
                let logits = try engine.forward(batch: batch)
                XCTAssertEqual(logits.count, batch.count)
                for (entry, s) in zip(batch, members) where entry.logits == .last {
                    rows[s].append(logits[members.firstIndex(of: s)!])
                }
                step += 1
            }
            for s in prompts.indices {
                XCTAssertEqual(sequences[s].cachedTokens, prompts[s].count + rows[s].count - 1)
                for (k, row) in rows[s].enumerated() {
                    XCTAssertTrue(row.elementsEqual(alone[s][k], by: { $0.bitPattern == $1.bitPattern }),
                                  "\(fixture) \(preset): sequence \(s), row \(k) differs between batch and alone")
                }
            }
            print("[engine-batch] \(fixture) \(preset): \(prompts.count) sequences over \(step) batched steps, bit-identical to lone runs")
        }
    }

    /// `.all` rows of several sequences in one step equal their lone prefills.
    func testAllRowsOfSeveralSequences() throws {
        let engine = try EngineTestSupport.engine("tiny-dsv2", preset: "q8")
        let ids = try EngineTestSupport.inputIds("tiny-dsv2")
        let prompts = [ids, Array(ids.prefix(4))]
        let lone = try prompts.map { prompt -> [Float] in
            engine.resetCache()
            return try engine.forward(tokens: prompt, logits: .all)
        }
        let sequences = [engine.makeSequence(), engine.makeSequence(), engine.makeSequence()]
        let logits = try engine.forward(batch: [BatchEntry(sequence: sequences[0], tokens: prompts[0], logits: .all),
                                                BatchEntry(sequence: sequences[2], tokens: [ids[1]], logits: .none),
                                                BatchEntry(sequence: sequences[1], tokens: prompts[1], logits: .all)])
        XCTAssertEqual(logits[1], [])
        XCTAssertTrue(logits[0].elementsEqual(lone[0], by: { $0.bitPattern == $1.bitPattern }))
        XCTAssertTrue(logits[2].elementsEqual(lone[1], by: { $0.bitPattern == $1.bitPattern }))
    }

    /// Bad batches throw before any cache changes.
    func testBadBatchesChangeNothing() throws {
        let engine = try EngineTestSupport.engine("tiny-dsv2", preset: "q8")
        let a = engine.makeSequence(), b = engine.makeSequence()
        _ = try engine.forward(batch: [BatchEntry(sequence: a, tokens: [1, 2, 3])])
        XCTAssertEqual(a.cachedTokens, 3)
        XCTAssertThrowsError(try engine.forward(batch: [])) { XCTAssertEqual($0 as? BatchError, .empty) }
        XCTAssertThrowsError(try engine.forward(batch: [BatchEntry(sequence: a, tokens: [4]), BatchEntry(sequence: a, tokens: [5])])) {
            XCTAssertEqual($0 as? BatchError, .repeatedSequence(entry: 1))
        }
        let other = try EngineTestSupport.engine("tiny-dsv2", preset: "q8", cache: .f32)
        XCTAssertThrowsError(try engine.forward(batch: [BatchEntry(sequence: b, tokens: [4]), BatchEntry(sequence: other.makeSequence(), tokens: [5])])) {
            XCTAssertEqual($0 as? BatchError, .foreignSequence(entry: 1))
        }
        let vocab = Int32(engine.config.vocabSize)
        XCTAssertThrowsError(try engine.forward(batch: [BatchEntry(sequence: b, tokens: [4]), BatchEntry(sequence: a, tokens: [vocab])])) {
            XCTAssertEqual($0 as? LanguageModelError, .tokenOutOfRange(token: vocab, vocabSize: Int(vocab)))
        }
        XCTAssertThrowsError(try engine.forward(batch: [BatchEntry(sequence: b, tokens: [])])) {
            XCTAssertEqual($0 as? LanguageModelError, .emptyInput)
        }
        XCTAssertEqual(a.cachedTokens, 3)
        XCTAssertEqual(b.cachedTokens, 0)
        try a.truncate(to: 1)
        XCTAssertEqual(a.cachedTokens, 1)
        XCTAssertThrowsError(try a.truncate(to: 2))
        a.reset()
        XCTAssertEqual(a.cachedTokens, 0)
        XCTAssertGreaterThan(a.allocatedBytes, 0)
    }
}
