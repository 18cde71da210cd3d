import Foundation
import XCTest
import DSV2Text
import TestSupport

/// `dsv2 tokenize` through the built binary and a pipe (`make test` builds it first).
final class TokenizeCommandTests: XCTestCase {
    func runTokenize(_ arguments: [String], input: String) throws -> DSV2Process.Result {
        try DSV2Process.run(["tokenize", "--tokenizer", TokenizerFixtures.folder("deepseek-v2").path] + arguments,
                            stdin: input)
    }

    func testEncodeChatAndDecodeThroughThePipe() throws {
        let rows = try TokenizerFixtures.rows("deepseek-v2", "cases.jsonl").prefix(40)
        let chats = try TokenizerFixtures.rows("deepseek-v2", "chat.jsonl").prefix(3)
        var input = rows.map { row -> String in
            var members: [(String, JSONValue)] = [("text", row["text"]!)]
            if row["add_special_tokens"]?.boolValue == true { members.append(("add_special_tokens", .bool(true))) }
            return JSONValue.object(members).serialized
        }
        input += chats.map { JSONValue.object([("messages", $0["messages"]!), ("add_generation_prompt", $0["add_generation_prompt"]!)]).serialized }
        let result = try runTokenize([], input: input.joined(separator: "\n") + "\n")
        XCTAssertEqual(result.status, 0, result.stderr)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: true).map { try? JSONValue.parse(String($0)) }
        XCTAssertEqual(lines.count, rows.count + chats.count)
        for (row, line) in zip(rows, lines) {
            XCTAssertEqual(TokenizerFixtures.ids(line?["ids"]), TokenizerFixtures.ids(row["ids"]))
        }
        for (chat, line) in zip(chats, lines.suffix(chats.count)) {
            XCTAssertEqual(TokenizerFixtures.ids(line?["ids"]), TokenizerFixtures.ids(chat["ids"]))
            XCTAssertTrue(TokenizerFixtures.same(line?["text"]?.stringValue, chat["text"]?.stringValue))
        }

        let decodeRows = try TokenizerFixtures.rows("deepseek-v2", "decode_cases.jsonl").prefix(30)
        let decodeInput = decodeRows.map { JSONValue.object([("ids", $0["ids"]!)]).serialized }.joined(separator: "\n")
        for (flag, key) in [([String](), "decoded"), (["--skip-special"], "decoded_skip_special")] {
            let decoded = try runTokenize(["--decode"] + flag, input: decodeInput)
            XCTAssertEqual(decoded.status, 0, decoded.stderr)
            let texts = decoded.stdout.split(separator: "\n").map { try? JSONValue.parse(String($0)) }
            XCTAssertEqual(texts.count, decodeRows.count)
            for (row, line) in zip(decodeRows, texts) {
                XCTAssertTrue(TokenizerFixtures.same(line?["text"]?.stringValue, row[key]?.stringValue))
            }
        }
    }

    func testBadLineNamesItsNumber() throws {
        let result = try runTokenize([], input: "{\"text\": \"ok\"}\n{\"text\": oops}\n")
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("line 2"), result.stderr)
    }
}
