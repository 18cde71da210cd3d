import Foundation
import XCTest
import TestSupport

/// Every golden row of both tokenizer fixtures: encode, tokens, decode, streaming decode, chat.
final class TokenizerGoldenTests: XCTestCase {
    func testEncodeCases() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.tokenizer(name)
            var passed = 0, failed = 0, bosRows = 0
            for row in try TokenizerFixtures.rows(name, "cases.jsonl") {
                let text = try XCTUnwrap(row["text"]?.stringValue)
                let expected = try XCTUnwrap(TokenizerFixtures.ids(row["ids"]))
                let addSpecial = row["add_special_tokens"]?.boolValue ?? false
                if addSpecial { bosRows += 1 }
                let ids = try tokenizer.encode(text, addSpecialTokens: addSpecial)
                let tokens = ids.map { tokenizer.token(for: $0) ?? "?" }
                let expectedTokens = row["tokens"]?.arrayValue?.compactMap { $0.stringValue } ?? []
                let decoded = tokenizer.decode(expected)
                let decodedSkip = tokenizer.decode(expected, skipSpecialTokens: true)
                let ok = ids == expected
                    && (addSpecial || zip(tokens, expectedTokens).allSatisfy { TokenizerFixtures.same($0, $1) })
                    && TokenizerFixtures.same(decoded, row["decoded"]?.stringValue)
                    && TokenizerFixtures.same(decodedSkip, row["decoded_skip_special"]?.stringValue)
                if ok { passed += 1 } else {
                    failed += 1
                    if failed <= 5 {
                        XCTFail("""
                            \(name): \(TokenizerFixtures.show(text))
                              ids      \(ids)
                              expected \(expected)
                              decoded  \(TokenizerFixtures.show(decoded)) vs \(TokenizerFixtures.show(row["decoded"]?.stringValue ?? ""))
                            """)
                    }
                }
            }
            print("[tokenizer] \(name) cases.jsonl: \(passed) passed, \(failed) failed (\(bosRows) add_special_tokens rows)")
            XCTAssertEqual(failed, 0)
            XCTAssertGreaterThan(passed, 580)
        }
    }

    func testDecodeAndStreamCases() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.tokenizer(name)
            var passed = 0, failed = 0
            for row in try TokenizerFixtures.rows(name, "decode_cases.jsonl") {
                let ids = try XCTUnwrap(TokenizerFixtures.ids(row["ids"]))
                var ok = TokenizerFixtures.same(tokenizer.decode(ids), row["decoded"]?.stringValue)
                    && TokenizerFixtures.same(tokenizer.decode(ids, skipSpecialTokens: true), row["decoded_skip_special"]?.stringValue)
                for (key, skip) in [("stream", false), ("stream_skip_special", true)] {
                    let expected = try XCTUnwrap(row[key]?.arrayValue)
                    var stream = tokenizer.streamingDecoder(skipSpecialTokens: skip)
                    for (id, want) in zip(ids, expected) {
                        let got = try stream.step(id)
                        if !(want.isNull ? got == nil : TokenizerFixtures.same(got, want.stringValue)) {
                            ok = false
                            if failed < 5 {
                                print("  \(name) \(key) ids \(ids): step \(id) gave \(got.map(TokenizerFixtures.show) ?? "nil"), want \(want.serialized)")
                            }
                        }
                    }
                }
                if ok { passed += 1 } else {
                    failed += 1
                    if failed <= 5 { XCTFail("\(name): decode row \(ids)") }
                }
            }
            print("[tokenizer] \(name) decode_cases.jsonl: \(passed) passed, \(failed) failed")
            XCTAssertEqual(failed, 0)
            XCTAssertGreaterThan(passed, 10)
        }
    }

    func testChatTemplateCases() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.tokenizer(name)
            var passed = 0, failed = 0
            for row in try TokenizerFixtures.rows(name, "chat.jsonl") {
                let messages = TokenizerFixtures.messages(row["messages"])
                let addPrompt = row["add_generation_prompt"]?.boolValue ?? false
                let text = try tokenizer.renderChat(messages, addGenerationPrompt: addPrompt)
                let ids = try tokenizer.encodeChat(messages, addGenerationPrompt: addPrompt)
                let expectedText = row["text"]?.stringValue
                let expectedIds = TokenizerFixtures.ids(row["ids"])
                if TokenizerFixtures.same(text, expectedText) && ids == expectedIds
                    && TokenizerFixtures.same(tokenizer.decode(ids), row["decoded"]?.stringValue) {
                    passed += 1
                } else {
                    failed += 1
                    XCTFail("\(name) chat: \(TokenizerFixtures.show(text)) vs \(TokenizerFixtures.show(expectedText ?? ""))")
                }
            }
            print("[tokenizer] \(name) chat.jsonl: \(passed) passed, \(failed) failed")
            XCTAssertEqual(failed, 0)
            XCTAssertEqual(passed, 14)
        }
    }
}
