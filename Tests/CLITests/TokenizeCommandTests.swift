import Foundation
import XCTest
import DSV2Text
import TestSupport

/// `dsv2 tokenize` through the built binary and a pipe (`make test` builds it first).
final class TokenizeCommandTests: XCTestCase {
    func runTokenize(_ arguments: [String], input: String) throws -> DSV2Process.Result {
        try DSV2Process.run(["tokenize", "--jsonl", "-m", TokenizerFixtures.folder("deepseek-v2").path] + arguments,
                            input: Data(input.utf8))
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
        XCTAssertEqual(result.status, 2)
        XCTAssertTrue(result.stderr.contains("line 2"), result.stderr)
        let okIds = try Tokenizer.load(from: TokenizerFixtures.folder("deepseek-v2")).encode("ok")
        XCTAssertEqual(TokenizerFixtures.ids(try JSONValue.parse(result.stdout)["ids"]), okIds,
                       "the lines before the bad one are answered")
        // An id the vocabulary does not have is an error, not an empty string.
        let outOfRange = try runTokenize(["--decode"], input: "{\"ids\": [1, 102400]}\n")
        XCTAssertEqual(outOfRange.status, 2)
        XCTAssertTrue(outOfRange.stderr.contains("line 1: token id 102400 is not in the vocabulary"), outOfRange.stderr)
    }

    /// Plain text lines (the default), with the model folder, the .dsv2 that embeds the same
    /// tokenizer, and the embedded default: the same ids; --bos and --chat as generate and chat
    /// encode; decoding back gives the text.
    func testPlainLinesFolderAndContainer() throws {
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let lines = ["Hello world", "", "The meaning of life is"]
        let input = Data((lines.joined(separator: "\n") + "\n").utf8)
        let expected = try lines.map { try tokenizer.encode($0).map(String.init).joined(separator: " ") }.joined(separator: "\n") + "\n"
        let container = Fixtures.repositoryRoot.appendingPathComponent("Tools/dsv2/Resources/tiny-dsv2.dsv2").path
        for model in [["-m", Fixtures.url("tiny-dsv2").path], ["--model", container], []] {
            let r = try DSV2Process.run(["tokenize"] + model, input: input)
            XCTAssertEqual(r.status, 0, r.stderr)
            XCTAssertEqual(r.stdout, expected, "\(model)")
        }
        let bos = try DSV2Process.run(["tokenize", "--bos"], input: Data("Hello world\n".utf8))
        XCTAssertEqual(bos.stdout, (["6000"] + (try tokenizer.encode("Hello world")).map(String.init)).joined(separator: " ") + "\n")
        let chat = try DSV2Process.run(["tokenize", "--chat"], input: Data("Hello\n".utf8))
        let chatIds = try tokenizer.encodeChat([ChatMessage(role: "user", content: "Hello")], addGenerationPrompt: true)
        XCTAssertEqual(chat.stdout, chatIds.map(String.init).joined(separator: " ") + "\n")

        let ids = try tokenizer.encode("Hello world").map(String.init)
        let decoded = try DSV2Process.run(["tokenize", "--decode"], input: Data((ids.joined(separator: ",") + "\n" + ids.joined(separator: " ") + "\n").utf8))
        XCTAssertEqual(decoded.status, 0, decoded.stderr)
        XCTAssertEqual(decoded.stdout, "Hello world\nHello world\n")
        for bad in ["1 6021\n", "1 x\n", "-1\n"] {
            let r = try DSV2Process.run(["tokenize", "--decode"], input: Data(bad.utf8))
            XCTAssertEqual(r.status, 2, bad)
            XCTAssertTrue(r.stderr.hasPrefix("dsv2 tokenize: error: stdin line 1: "), r.stderr)
        }
    }
}
