import ArgumentParser
import DSV2
import Foundation

/// `dsv2 tokenize`: HF-exact encoding and decoding with a model's tokenizer.
///
/// Plain lines (the default): each line of stdin is encoded to its ids, written space-separated
/// on one line; with `--decode` each line of ids (spaces or commas) becomes its text.
/// `--jsonl`, one JSON object per line:
///   `{"text": "...", "add_special_tokens": true}`           -> `{"ids": [...]}`
///   `{"messages": [...], "add_generation_prompt": true}`    -> `{"ids": [...], "text": "..."}`
///   with `--decode`: `{"ids": [...]}`                       -> `{"text": "..."}`
/// A line that cannot be read, or an id the vocabulary does not have, is an error naming its
/// line number (exit status 2); the lines before it are answered.
struct TokenizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenize",
        abstract: "Encode or decode stdin with a model's tokenizer (text lines, or JSON lines with --jsonl).")

    @Option(name: [.customShort("m"), .long],
            help: ArgumentHelp("A Hugging Face folder, a .dsv2 container, or a folder holding only tokenizer.json (default: the embedded tiny-dsv2).",
                               valueName: "hf-folder|model.dsv2"))
    var model: String?

    @Flag(name: .long, help: "Decode ids to text instead of encoding text.")
    var decode = false

    @Flag(name: .long, help: "Read and write JSON lines ({\"text\": …}, {\"messages\": […]}, {\"ids\": […]}).")
    var jsonl = false

    @Flag(name: .long, help: "Put BOS in front of every encoded line (as generate does).")
    var bos = false

    @Flag(name: .long, help: "Encode each line as a user message through the chat template, with the generation prompt.")
    var chat = false

    @Flag(name: .customLong("skip-special"), help: "With --decode: drop special tokens (BOS, EOS, ...).")
    var skipSpecial = false

    struct LineError: Error, CustomStringConvertible {
        let line: Int
        let reason: String
        var description: String { "stdin line \(line): \(reason)" }
    }

    func validate() throws {
        if decode && (chat || bos) { throw ValidationError("--chat and --bos apply to encoding, not --decode") }
        if skipSpecial && !decode { throw ValidationError("--skip-special applies to --decode") }
    }

    func run() throws {
        let tok = try TokenizerSource(model).makeTokenizer()
        if bos && tok.bosTokenId == nil { throw UsageError("--bos: \(tok.path) defines no BOS token") }
        if chat && tok.chatTemplate == nil { throw UsageError("--chat: \(tok.path) has no chat_template") }
        var lineNumber = 0
        var buffered = ""
        // Lines answered before a bad line are still written.
        defer { Terminal.write(buffered) }
        var lines = StandardInputLines()
        while let line = lines.next() {
            lineNumber += 1
            if jsonl {
                if line.allSatisfy({ $0 == 0x20 || $0 == 0x09 || $0 == 0x0D }) { continue }
                let value: JSONValue
                do { value = try JSONValue.parse(Data(line)) } catch {
                    throw LineError(line: lineNumber, reason: "invalid JSON (\(error))")
                }
                guard value.objectValue != nil else { throw LineError(line: lineNumber, reason: "expected a JSON object") }
                buffered += try respond(to: value, tokenizer: tok, line: lineNumber)
            } else {
                var text = String(decoding: line, as: UTF8.self)
                if text.hasSuffix("\r") { text.removeLast() }
                buffered += try respond(toPlain: text, tokenizer: tok, line: lineNumber)
            }
            buffered += "\n"
            if buffered.utf8.count > 1 << 16 { Terminal.write(buffered); buffered = "" }
        }
    }

    /// A plain line: its ids, or with --decode its text.
    private func respond(toPlain text: String, tokenizer tok: Tokenizer, line: Int) throws -> String {
        if decode {
            let parts = text.split(whereSeparator: { $0 == " " || $0 == "," || $0 == "\t" })
            let ids = try parts.map { part -> Int in
                guard let id = Int(part) else { throw LineError(line: line, reason: "\"\(part)\" is not a token id") }
                return id
            }
            return tok.decode(try checked(ids, tok, line: line), skipSpecialTokens: skipSpecial)
        }
        return try encode(text, addSpecialTokens: false, tokenizer: tok, line: line).ids.map(String.init).joined(separator: " ")
    }

    /// The ids of `text` (through the chat template with --chat, BOS first with --bos).
    private func encode(_ text: String, addSpecialTokens: Bool, tokenizer tok: Tokenizer, line: Int) throws -> (ids: [Int], rendered: String?) {
        var rendered: String?
        var ids: [Int]
        if chat {
            do { rendered = try tok.renderChat([ChatMessage(role: "user", content: text)], addGenerationPrompt: true) } catch {
                throw LineError(line: line, reason: "\(error)")
            }
            ids = try tok.encode(rendered!, addSpecialTokens: false)
        } else {
            ids = try tok.encode(text, addSpecialTokens: addSpecialTokens)
        }
        if bos, let id = tok.bosTokenId, ids.first != id { ids.insert(id, at: 0) }
        return (ids, rendered)
    }

    /// `ids`, or an error naming the first one the vocabulary does not have.
    private func checked(_ ids: [Int], _ tok: Tokenizer, line: Int) throws -> [Int] {
        if let bad = ids.first(where: { tok.token(for: $0) == nil }) {
            throw LineError(line: line, reason: "token id \(bad) is not in the vocabulary (0..<\(tok.vocabularySize))")
        }
        return ids
    }

    private func respond(to value: JSONValue, tokenizer tok: Tokenizer, line: Int) throws -> String {
        if decode {
            guard let array = value["ids"]?.arrayValue else { throw LineError(line: line, reason: "expected {\"ids\": [...]}") }
            let ids = try array.map { v -> Int in
                guard let id = v.intValue else {
                    throw LineError(line: line, reason: "`ids` holds \(v.serialized), not a token id (0..<\(tok.vocabularySize))")
                }
                return id
            }
            let text = tok.decode(try checked(ids, tok, line: line), skipSpecialTokens: skipSpecial)
            return JSONValue.object([("text", .string(text))]).serialized
        }
        if let text = value["text"]?.stringValue {
            let addSpecial = value["add_special_tokens"]?.boolValue ?? false
            let (ids, rendered) = try encode(text, addSpecialTokens: addSpecial, tokenizer: tok, line: line)
            var members: [(String, JSONValue)] = [("ids", .array(ids.map { .number(Double($0)) }))]
            if let rendered { members.append(("text", .string(rendered))) }
            return JSONValue.object(members).serialized
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
            var ids = try tok.encode(text, addSpecialTokens: false)
            if bos, let id = tok.bosTokenId, ids.first != id { ids.insert(id, at: 0) }
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
