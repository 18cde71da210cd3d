import Foundation
import XCTest
import DSV2Text

/// Fixture loading shared by the tokenizer tests: each tokenizer is loaded once per process.
public enum TokenizerFixtures {
    public static let names = ["deepseek-v2", "deepseek-v2-style"]

    public static func folder(_ name: String) -> URL { Fixtures.url("tokenizer/\(name)") }

    private static let lock = NSLock()
    nonisolated(unsafe) private static var loaded: [String: Tokenizer] = [:]

    public static func tokenizer(_ name: String) throws -> Tokenizer {
        lock.lock()
        defer { lock.unlock() }
        if let t = loaded[name] { return t }
        let t = try Tokenizer.load(from: folder(name))
        loaded[name] = t
        return t
    }

    /// JSON Lines split on byte 0x0A only (U+2028 etc. inside rows are not line breaks).
    public static func rows(_ name: String, _ file: String) throws -> [JSONValue] {
        let data = try Data(contentsOf: folder(name).appendingPathComponent(file))
        return try data.split(separator: 0x0A).map { try JSONValue.parse(Data($0)) }
    }

    public static func ids(_ value: JSONValue?) -> [Int]? { value?.arrayValue?.compactMap { $0.intValue } }

    public static func messages(_ value: JSONValue?) -> [ChatMessage] {
        (value?.arrayValue ?? []).map { ChatMessage(role: $0["role"]?.stringValue ?? "", content: $0["content"]?.stringValue ?? "") }
    }

    /// Scalar-exact string equality (Swift `==` is canonical equivalence, which would hide bugs).
    public static func same(_ a: String?, _ b: String?) -> Bool {
        guard let a, let b else { return a == nil && b == nil }
        return a.unicodeScalars.elementsEqual(b.unicodeScalars)
    }

    public static func show(_ s: String) -> String {
        s.unicodeScalars.map { $0.value < 0x20 || $0.value > 0x7E ? String(format: "\\u{%X}", $0.value) : String($0) }.joined()
    }
}
