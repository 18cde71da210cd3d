import XCTest
import TestSupport
import DSV2Reference

/// `dsv2 chat` driven through a pipe (non-interactive: each line a user turn, exit at EOF).
final class ChatCommandTests: XCTestCase {
    private let model = Fixtures.url("tiny-dsv2").path

    private func chat(_ input: String, _ extra: [String]) throws -> DSV2Run {
        try DSV2Run.run(["chat", "--model", model, "--engine", "reference", "--temp", "0", "-n", "24"] + extra, stdin: input)
    }

    /// Turn 2 feeds only what is new: the reuse count equals the whole context after turn 1, and
    /// reused + fed equals the full rendered conversation (so the cached context is exact).
    func testSecondTurnReusesTheCache() throws {
        let run = try chat("Hello, who are you?\nTell me a joke.\n", ["--json", "--system", "You are a fortune cookie."])
        XCTAssertEqual(run.status, 0, run.stderr)
        let turns = try run.jsonLines()
        XCTAssertEqual(turns.count, 2)
        let first = turns[0], second = turns[1]
        XCTAssertEqual(first["reused_tokens"] as? Int, 0)

        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let system = ChatMessage(role: "system", content: "You are a fortune cookie.")
        let user1 = ChatMessage(role: "user", content: "Hello, who are you?")
        let user2 = ChatMessage(role: "user", content: "Tell me a joke.")
        let turn1Prompt = try tokenizer.encodeChat([system, user1], addGenerationPrompt: true)
        XCTAssertEqual(first["prompt_tokens"] as? Int, turn1Prompt.count)

        let reply1 = try XCTUnwrap(first["reply"] as? String)
        let conversation = [system, user1, ChatMessage(role: "assistant", content: reply1), user2]
        let turn2Prompt = try tokenizer.encodeChat(conversation, addGenerationPrompt: true)
        let reused = try XCTUnwrap(second["reused_tokens"] as? Int)
        let fed = try XCTUnwrap(second["prompt_tokens"] as? Int)
        XCTAssertEqual(reused, first["context_tokens"] as? Int, "the whole turn-1 context was reused")
        XCTAssertEqual(reused + fed, turn2Prompt.count)
        // Fed: the rest of reply 1 (its last sampled token and the template's EOS) + the new user turn.
        let newUserTurn = tokenizer.encode("User: Tell me a joke.\n\nAssistant:")
        XCTAssertLessThanOrEqual(fed, newUserTurn.count + 2)
        XCTAssertGreaterThanOrEqual(fed, newUserTurn.count)
    }

    /// Greedy chat is the same as greedy generation on the rendered prompt (the reply is exact).
    func testFirstReplyEqualsGenerationOnTheTemplate() throws {
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let prompt = try tokenizer.renderChat([ChatMessage(role: "user", content: "Hello")], addGenerationPrompt: true)
        let chatRun = try chat("Hello\n", ["--json"])
        let generated = try DSV2Run.run(["generate", "--model", model, "--prompt", prompt, "--no-bos", "--temp", "0",
                                         "-n", "24", "--json"]).json()
        XCTAssertEqual(try chatRun.jsonLines().first?["generated_ids"] as? [Int], generated["generated_ids"] as? [Int])
    }

    /// Plain text mode: replies on stdout, no prompt marker (stdin is a pipe), stats per reply on
    /// stderr, clean exit at EOF; blank lines are not turns.
    func testPipedTextMode() throws {
        let run = try chat("Hi there\n\nWhat is Python?\n", [])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertFalse(run.stdout.contains("> "))
        XCTAssertEqual(run.stderr.components(separatedBy: "generated:").count - 1, 2, run.stderr)
        XCTAssertTrue(run.stderr.contains("reused from the cache"), run.stderr)
        XCTAssertEqual(run.stdout.filter { $0 == "\n" }.count >= 2, true)
    }

    func testEmptyInputExitsCleanly() throws {
        let run = try chat("", [])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(run.stdout, "")
    }

    /// A small context fills up: the conversation starts over instead of failing.
    func testConversationStartsOverWhenTheContextIsFull() throws {
        let run = try chat("Hello there\nTell me more\nAnd more\n", ["--json", "--ctx-size", "48", "-n", "16"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try run.jsonLines().count, 3)
        XCTAssertTrue(run.stderr.contains("starting over"), run.stderr)
    }
}
