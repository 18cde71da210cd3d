import ArgumentParser
import DSV2Text
import Foundation

/// `dsv2 tokenize`: HF-exact encoding and decoding of JSON lines on stdin.
///
/// Input, one JSON object per line:
///   `{"text": "...", "add_special_tokens": true}`           -> `{"ids": [...]}`
///   `{"messages": [...], "add_generation_prompt": true}`    -> `{"ids": [...], "text": "..."}`
///   with `--decode`: `{"ids": [...]}`                       -> `{"text": "..."}`
/// A line that is not such an object is an error naming its line number (exit code 1).
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode or decode JSON lines on stdin with a Hugging Face tokenizer.json.")

    @Option(name: .long, help: "Folder with tokenizer.json (+ tokenizer_config.json), or the tokenizer.json itself.")
    var tokenizer: String

    @Flag(name: .long, help: "Read {\"ids\": [...]} lines and write {\"text\": ...}.")
    var decode = false

    @Flag(name: .customLong("skip-special"), help: "With --decode: drop special tokens (BOS, EOS, ...).")
    var skipSpecial = false

    struct LineError: Error, CustomStringConvertible {
        let line: Int
        let reason: String
        var description: String { "stdin line \(line): \(reason)" }
    }

    func run() throws {
        let tok = try Tokenizer.load(from: URL(fileURLWithPath: tokenizer))
        let output = FileHandle.standardOutput
        var lineNumber = 0
        var buffered = ""
        // Rows answered before a bad line are still written.
        defer { output.write(Data(buffered.utf8)) }
        var lines = StandardInputLines()
        while let line = lines.next() {
            lineNumber += 1
            if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
            let value: JSONValue
            do { value = try JSONValue.parse(Data(line)) } catch {
                throw LineError(line: lineNumber, reason: "invalid JSON (\(error))")
            }
            guard value.objectValue != nil else { throw LineError(line: lineNumber, reason: "expected a JSON object") }
            buffered += try respond(to: value, tokenizer: tok, line: lineNumber)
            buffered += "\n"
            if buffered.utf8.count > 1 << 16 { output.write(Data(buffered.utf8)); buffered = "" }
        }
    }

    private func respond(to value: JSONValue, tokenizer tok: Tokenizer, line: Int) throws -> String {
        if decode {
            guard let array = value["ids"]?.arrayValue else { throw LineError(line: line, reason: "expected {\"ids\": [...]}") }
            let ids = try array.map { v -> Int in
                guard let id = v.intValue else { throw LineError(line: line, reason: "`ids` must hold integers") }
                return id
            }
            return JSONValue.object([("text", .string(tok.decode(ids, skipSpecialTokens: skipSpecial)))]).serialized
        }
        if let text = value["text"]?.stringValue {
            let addSpecial = value["add_special_tokens"]?.boolValue ?? false
            let ids = try tok.encode(text, addSpecialTokens: addSpecial)
            return JSONValue.object([("ids", .array(ids.map { .number(Double($0)) }))]).serialized
        }
        if let list = value["messages"]?.arrayValue {
            var messages: [ChatMessage] = []
            for (i, m) in list.enumerated() {
                guard let role = m["role"]?.stringValue, let content = m["content"]?.stringValue else {
                    throw LineError(line: line, reason: "messages[\(i)] needs string `role` and `content`")
                }
                var extra: [String: String] = [:]
                for (k, v) in m.objectValue ?? [] where k != "role" && k != "content" {
                    if let s = v.stringValue { extra[k] = s }
                }
                messages.append(ChatMessage(role: role, content: content, extra: extra))
            }
            let addPrompt = value["add_generation_prompt"]?.boolValue ?? false
            let text: String
            do { text = try tok.renderChat(messages, addGenerationPrompt: addPrompt) } catch {
                throw LineError(line: line, reason: "\(error)")
            }
            let ids = try tok.encode(text, addSpecialTokens: false)
            return JSONValue.object([("ids", .array(ids.map { .number(Double($0)) })), ("text", .string(text))]).serialized
        }
        throw LineError(line: line, reason: "expected {\"text\": ...} or {\"messages\": [...]}")
    }
}

/// Lines of stdin as raw bytes, split on 0x0A only (U+2028 and friends are not line breaks).
struct StandardInputLines {
    private var buffer: [UInt8] = []
    private var start = 0
    private var finished = false

    mutating func next() -> [UInt8]? {
        while true {
            if let newline = buffer[start...].firstIndex(of: 0x0A) {
                let line = Array(buffer[start..<newline])
                start = newline + 1
                return line
            }
            if finished {
                guard start < buffer.count else { return nil }
                let line = Array(buffer[start...])
                start = buffer.count
                return line
            }
            buffer.removeFirst(start)
            start = 0
            let chunk = FileHandle.standardInput.availableData
            if chunk.isEmpty { finished = true } else { buffer.append(contentsOf: chunk) }
        }
    }
}
