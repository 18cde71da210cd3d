import XCTest
import TestSupport
import DSV2Text

/// `dsv2 chat` driven through a pipe (non-interactive: each line a user turn, exit at EOF).
final class ChatCommandTests: XCTestCase {
    private let model = Fixtures.url("tiny-dsv2").path

    private func chat(_ input: String, _ extra: [String]) throws -> DSV2Process.Result {
        try DSV2Process.run(["chat", "--model", model, "--engine", "reference", "--temp", "0", "-n", "24"] + extra, stdin: input)
    }

    /// Turn 2 feeds only what is new: here (a reply that starts with a space and re-encodes to the
    /// same tokens) the whole turn-1 context is reused, and reused + fed equals the full rendered
    /// conversation (so the cached context is exactly the template's tokens).
    func testSecondTurnReusesTheCache() throws {
        let run = try chat("Who wrote this?\nTell me a joke.\n", ["--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let turns = try run.jsonLines()
        XCTAssertEqual(turns.count, 2)
        let first = turns[0], second = turns[1]
        XCTAssertEqual(first["reused_tokens"] as? Int, 0)

        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let user1 = ChatMessage(role: "user", content: "Who wrote this?")
        let user2 = ChatMessage(role: "user", content: "Tell me a joke.")
        XCTAssertEqual(first["prompt_tokens"] as? Int, try tokenizer.encodeChat([user1], addGenerationPrompt: true).count)

        let reply1 = try XCTUnwrap(first["text"] as? String)
        let turn2Prompt = try tokenizer.encodeChat([user1, ChatMessage(role: "assistant", content: reply1), user2],
                                                   addGenerationPrompt: true)
        let reused = try XCTUnwrap(second["reused_tokens"] as? Int)
        let fed = try XCTUnwrap(second["prompt_tokens"] as? Int)
        XCTAssertEqual(reused + fed, turn2Prompt.count)
        XCTAssertEqual(reused, first["context_tokens"] as? Int, "the whole turn-1 context was reused")
        // Fed: reply 1's last sampled token, the template's EOS, and the new user turn.
        let newUserTurn = try tokenizer.encode("User: Tell me a joke.\n\nAssistant:")
        XCTAssertEqual(fed, newUserTurn.count + 2)
    }

    /// A reply the template re-renders differently (the tiny model often starts with a newline,
    /// and the template puts a space before the content) is not a failure: the cache is cut back
    /// to the common prefix, which still covers the whole turn-1 prompt. The system message is
    /// part of the first prompt.
    func testDivergingReplyTruncatesToTheCommonPrefix() throws {
        let system = ChatMessage(role: "system", content: "You are a fortune cookie.")
        let user1 = ChatMessage(role: "user", content: "Hello, who are you?")
        let run = try chat("Hello, who are you?\nTell me a joke.\n", ["--json", "--system", system.content])
        XCTAssertEqual(run.status, 0, run.stderr)
        let turns = try run.jsonLines()
        XCTAssertEqual(turns.count, 2)
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let turn1Prompt = try tokenizer.encodeChat([system, user1], addGenerationPrompt: true)
        XCTAssertEqual(turns[0]["prompt_tokens"] as? Int, turn1Prompt.count)
        let reply1 = try XCTUnwrap(turns[0]["text"] as? String)
        let turn2Prompt = try tokenizer.encodeChat([system, user1, ChatMessage(role: "assistant", content: reply1),
                                                    ChatMessage(role: "user", content: "Tell me a joke.")],
                                                   addGenerationPrompt: true)
        let reused = try XCTUnwrap(turns[1]["reused_tokens"] as? Int)
        XCTAssertGreaterThanOrEqual(reused, turn1Prompt.count)
        XCTAssertEqual(reused + (turns[1]["prompt_tokens"] as? Int ?? 0), turn2Prompt.count)
    }

    /// Greedy chat is the same as greedy generation on the rendered prompt (the reply is exact).
    func testFirstReplyEqualsGenerationOnTheTemplate() throws {
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let prompt = try tokenizer.renderChat([ChatMessage(role: "user", content: "Hello")], addGenerationPrompt: true)
        let chatRun = try chat("Hello\n", ["--json"])
        let generated = try DSV2Process.run(["generate", "--model", model, "--prompt", prompt, "--no-bos", "--temp", "0",
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

    /// Ctrl-C while waiting for the next message leaves with status 130 (as a shell expects).
    func testInterruptAtThePromptExits() throws {
        let chat = try DSV2Process.start(["chat", "--model", model, "--temp", "0", "-n", "8"])
        chat.write("Hello\n")
        try chat.waitForOutput("generated:")              // the reply is done: back at the prompt
        chat.signal(SIGINT)
        let result = try chat.finish()
        XCTAssertEqual(result.status, 130, result.stderr)
    }
}
