import XCTest
import TestSupport
import DSV2Text

/// `dsv2 chat` driven through a pipe (non-interactive: each line a user turn, exit at EOF).
final class ChatCommandTests: XCTestCase {
    private let model = Fixtures.url("tiny-dsv2").path

    private func chat(_ input: String, _ extra: [String]) throws -> DSV2Process.Result {
        try DSV2Process.run(["chat", "--model", model, "--engine", "reference", "--temp", "0", "-n", "24"] + extra, stdin: input)
    }

    /// Turn 2 feeds only what is new: the whole turn-1 context (prompt and reply, as the model saw
    /// them) is reused, and what is fed is reply 1's last sampled token, the template's EOS (the
    /// reply stopped at -n, without one) and the new user turn.
    func testSecondTurnReusesTheCache() throws {
        let run = try chat("Who wrote this?\nTell me a joke.\n", ["--json"])
        XCTAssertEqual(run.status, 0, run.stderr)
        let turns = try run.jsonLines()
        XCTAssertEqual(turns.count, 2)
        let first = turns[0], second = turns[1]
        XCTAssertEqual(first["reused_tokens"] as? Int, 0)

        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let user1 = ChatMessage(role: "user", content: "Who wrote this?")
        XCTAssertEqual(first["prompt_tokens"] as? Int, try tokenizer.encodeChat([user1], addGenerationPrompt: true).count)
        XCTAssertEqual(second["reused_tokens"] as? Int, first["context_tokens"] as? Int, "the whole turn-1 context was reused")
        let newUserTurn = try tokenizer.encode("User: Tell me a joke.\n\nAssistant:")
        let endedWithEOS = first["stop_reason"] as? String == "eos"
        XCTAssertEqual(second["prompt_tokens"] as? Int, newUserTurn.count + (endedWithEOS ? 1 : 2))
    }

    /// Whatever the reply's first character (the tiny model often starts with a newline, which the
    /// template writes after a space, so re-encoding the rendered reply gives other tokens), turn 2
    /// reuses all of turn 1: the system message, the prompt and the reply.
    func testReplyNotStartingWithASpaceIsReusedWhole() throws {
        let system = ChatMessage(role: "system", content: "You are a fortune cookie.")
        var sawOtherStart = false
        for (first, second) in [("Hello, who are you?", "Tell me a joke."), ("Who wrote this?", "Why?"), ("Hi", "And then?")] {
            let run = try chat("\(first)\n\(second)\n", ["--json", "--system", system.content])
            XCTAssertEqual(run.status, 0, run.stderr)
            let turns = try run.jsonLines()
            XCTAssertEqual(turns.count, 2)
            XCTAssertEqual(turns[1]["reused_tokens"] as? Int, turns[0]["context_tokens"] as? Int, first)
            let reply = try XCTUnwrap(turns[0]["text"] as? String)
            let ids = try XCTUnwrap(turns[0]["generated_ids"] as? [Int])
            let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
            if let firstId = ids.first, !tokenizer.decode([firstId]).hasPrefix(" ") { sawOtherStart = true }
            XCTAssertFalse(reply.hasPrefix(" "))
        }
        XCTAssertTrue(sawOtherStart, "no reply started without a space: the case is not exercised")
    }

    /// Greedy chat is the same as greedy generation on the rendered prompt (the reply is exact).
    func testFirstReplyEqualsGenerationOnTheTemplate() throws {
        let tokenizer = try Tokenizer.load(from: Fixtures.url("tiny-dsv2"))
        let prompt = try tokenizer.renderChat([ChatMessage(role: "user", content: "Hello")], addGenerationPrompt: true)
        let chatRun = try chat("Hello\n", ["--json"])
        let generated = try DSV2Process.run(["generate", "--model", model, "--engine", "reference", "--prompt", prompt, "--no-bos", "--temp", "0",
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

    /// A small context fills up: the conversation starts over instead of failing; a turn that
    /// cannot fit even alone is an error that ends a piped chat with status 2.
    func testConversationStartsOverWhenTheContextIsFull() throws {
        let run = try chat("Hello there\nTell me more\nAnd more\n", ["--json", "--ctx-size", "48", "-n", "16"])
        XCTAssertEqual(run.status, 0, run.stderr)
        XCTAssertEqual(try run.jsonLines().count, 3)
        XCTAssertTrue(run.stderr.contains("starting over"), run.stderr)

        let tooLong = try chat("Hello there\n" + String(repeating: "word ", count: 80) + "\nnever read\n", ["--json", "--ctx-size", "48"])
        XCTAssertEqual(tooLong.status, 2, tooLong.stderr)
        XCTAssertTrue(tooLong.stderr.contains("dsv2 chat: error: the prompt has"), tooLong.stderr)
        XCTAssertEqual(try tooLong.jsonLines().count, 1, "the turn before the error was answered, none after")
    }

    /// Ctrl-C while waiting for the next message leaves with status 130 (as a shell expects).
    func testInterruptAtThePromptExits() throws {
        let chat = try DSV2Process.start(["chat", "--model", model, "--temp", "0", "-n", "8"])
        chat.write("Hello\n")
        try chat.waitForOutput("generated:")              // the reply is done: back at the prompt
        chat.signal(SIGINT)
        // Let the signal end it before finish() closes stdin: an end of input read first would
        // end the chat normally (status 0) and hide what SIGINT does.
        let deadline = Date().addingTimeInterval(20)
        while chat.isRunning && Date() < deadline { usleep(10_000) }
        let result = try chat.finish()
        XCTAssertEqual(result.status, 130, result.stderr)
    }
}
