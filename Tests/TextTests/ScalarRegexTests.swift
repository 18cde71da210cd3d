import XCTest
import TestSupport
@testable import DSV2Text

/// The regex engine on the DeepSeek family's Split patterns and on its error paths.
final class ScalarRegexTests: XCTestCase {
    func matches(_ pattern: String, _ text: String) throws -> [String] {
        let regex = try ScalarRegex(pattern)
        let scalars = text.unicodeScalars.map { $0.value }
        var out: [(Int, Int)] = []
        var stack: [RegexBacktrack] = []
        scalars.withUnsafeBufferPointer { regex.matches($0.baseAddress ?? UnsafePointer(bitPattern: 8)!, 0, $0.count, into: &out, stack: &stack) }
        return out.map { String(String.UnicodeScalarView(scalars[$0.0..<$0.1].map { Unicode.Scalar($0)! })) }
    }

    func testDeepSeekCoderStylePatterns() throws {
        XCTAssertEqual(try matches(#"\p{N}{1,3}"#, "12345 x 7"), ["123", "45", "7"])
        XCTAssertEqual(try matches(#"[\p{P}\p{S}]"#, "a+b, c!"), ["+", ",", "!"])
        XCTAssertEqual(try matches(#"\s+(?!\S)|\s+"#, "a   b  "), ["  ", " ", "  "])
        XCTAssertEqual(try matches(#"(?i:'s|'t|'re|'ve|'m|'ll|'d)"#, "it'S they'RE we'll"), ["'S", "'RE", "'ll"])
        XCTAssertEqual(try matches(#"[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+"#, " héllo wörld"), [" héllo", " wörld"])
        XCTAssertEqual(try matches(#"\s+$"#, "ab  "), ["  "])
        XCTAssertEqual(try matches(#"[一-龥ࠀ-一가-퟿]+"#, "ab中文cd한국"), ["中文", "한국"])
        // Astral ranges and classes.
        XCTAssertEqual(try matches(#"[𐐀-𐑏]+"#, "x𐐀𐐁y"), ["𐐀𐐁"])
        // Lazy quantifier and alternation priority.
        XCTAssertEqual(try matches(#"a+?"#, "aaa"), ["a", "a", "a"])
        XCTAssertEqual(try matches(#"ab|a"#, "aab"), ["a", "ab"])
        // Kelvin sign folds to k under (?i).
        XCTAssertEqual(try matches(#"(?i:k)"#, "kK\u{212A}"), ["k", "K", "\u{212A}"])
    }

    func testWhiteSpaceIsExact() throws {
        // \s = Unicode White_Space: U+0085 and U+3000 are in, U+200B (zero width space) and U+180E are not.
        XCTAssertEqual(try matches(#"\s"#, "\u{85}\u{3000}\u{200B}\u{180E}"), ["\u{85}", "\u{3000}"])
    }

    func testUnsupportedSyntaxIsAClearError() {
        for pattern in [#"(?<=a)b"#, #"\1"#, #"a++"#, #"[[:alpha:]]"#, #"\p{Greek}"#, #"(?>a)"#] {
            XCTAssertThrowsError(try ScalarRegex(pattern), pattern) { error in
                guard case TokenizerError.unsupportedRegex = error else { return XCTFail("\(pattern): \(error)") }
            }
        }
        XCTAssertThrowsError(try ScalarRegex("(ab"))
        XCTAssertThrowsError(try ScalarRegex("[a-"))
    }
}

/// Loader errors name the component; tokenizer behaviour beyond the golden rows.
final class TokenizerLoaderTests: XCTestCase {
    func minimalTokenizer(preTokenizer: String = #"{"type": "ByteLevel", "add_prefix_space": false, "use_regex": true}"#,
                          normalizer: String = "null", decoder: String = #"{"type": "ByteLevel"}"#,
                          model: String? = nil) -> Data {
        let vocab = (0..<256).map { b -> String in
            let token = ByteLevel.token(ofBytes: [UInt8(b)])
            var escaped = ""
            JSONValue.writeString(token, to: &escaped)
            return "\(escaped): \(b)"
        }.joined(separator: ", ")
        let modelJSON = model ?? #"{"type": "BPE", "vocab": {\#(vocab), "he": 256, "hel": 257}, "merges": [["h", "e"], "he l"]}"#
        return Data("""
            {"added_tokens": [{"id": 300, "content": "<|x|>", "special": true, "normalized": false, "lstrip": true, "rstrip": false, "single_word": false}],
             "normalizer": \(normalizer), "pre_tokenizer": \(preTokenizer), "post_processor": null,
             "decoder": \(decoder), "model": \(modelJSON)}
            """.utf8)
    }

    func testUnsupportedComponentsAreNamed() {
        let cases: [(Data, String)] = [
            (minimalTokenizer(normalizer: #"{"type": "NFKC"}"#), "normalizer"),
            (minimalTokenizer(preTokenizer: #"{"type": "Metaspace"}"#), "pre_tokenizer"),
            (minimalTokenizer(decoder: #"{"type": "WordPiece"}"#), "decoder"),
            (minimalTokenizer(model: #"{"type": "Unigram", "vocab": []}"#), "model"),
        ]
        for (data, field) in cases {
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: data, configJSON: nil)) { error in
                guard case let TokenizerError.unsupportedComponent(_, f, _) = error else { return XCTFail("\(error)") }
                XCTAssertTrue(f.hasPrefix(field), "\(f)")
            }
        }
    }

    func testMinimalTokenizerBothMergeFormsAndLstrip() throws {
        let t = try Tokenizer(tokenizerJSON: minimalTokenizer(), configJSON: nil)
        XCTAssertEqual(t.encode("hello"), [257, 108, 111])   // "he" + "l" -> "hel", then l, o
        XCTAssertEqual(t.decode([257, 108, 111]), "hello")
        // lstrip: the spaces before the added token are absorbed into it.
        XCTAssertEqual(t.encode("a   <|x|>b"), [97, 300, 98])
        XCTAssertEqual(t.decode([97, 300, 98], skipSpecialTokens: true), "ab")
    }

    func testByteLevelPrefixSpaceAndSplitBehaviors() throws {
        let prefixed = try Tokenizer(tokenizerJSON: minimalTokenizer(
            preTokenizer: #"{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}"#), configJSON: nil)
        XCTAssertEqual(prefixed.encode("hello"), [32, 257, 108, 111])   // " hello": prefix space, then BPE
        // Removed drops the matches; MergedWithPrevious glues them to the piece before.
        let removed = try Tokenizer(tokenizerJSON: minimalTokenizer(preTokenizer: """
            {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": "-"}, "behavior": "Removed", "invert": false},
             {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}
            """), configJSON: nil)
        XCTAssertEqual(removed.encode("he-l"), [256, 108])
        let merged = try Tokenizer(tokenizerJSON: minimalTokenizer(preTokenizer: """
            {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "l"}, "behavior": "MergedWithNext", "invert": false},
             {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}
            """), configJSON: nil)
        XCTAssertEqual(merged.encode("hel"), [256, 108])   // "he" | "l": the match starts the next piece
    }

    func testLongPiecesUseTheHeapPathConsistently() throws {
        let t = try TokenizerFixtures.tokenizer("deepseek-v2")
        // 300 letters is one piece (> 64 symbols: heap merge); it must round-trip and agree with
        // pieces of the same text split by spaces being encoded separately in the cache.
        let long = String(repeating: "abcdefghij", count: 40)
        XCTAssertEqual(t.decode(t.encode(long)), long)
        XCTAssertEqual(t.encode(long), t.encode(long))
        let text = "Ein Führer für 12,5 km² — 你好，世界！ 🙂\r\n\tend"
        XCTAssertTrue(TokenizerFixtures.same(t.decode(t.encode(text)), text))
    }
}
