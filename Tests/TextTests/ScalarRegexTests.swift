import XCTest
import TestSupport
@testable import DSV2Text

/// The regex engine on the DeepSeek family's Split patterns and on its error paths.
final class ScalarRegexTests: XCTestCase {
    /// The matched strings; every pattern is also run on the memoizing matcher alone, which must agree.
    func matches(_ pattern: String, _ text: String) throws -> [String] {
        let regex = try ScalarRegex(pattern)
        let fast = try spans(regex, text, forceMemo: false)
        XCTAssertTrue(fast.elementsEqual(try spans(regex, text, forceMemo: true), by: ==), "memo matcher differs on /\(pattern)/")
        let scalars = text.unicodeScalars.map { $0.value }
        return fast.map { String(String.UnicodeScalarView(scalars[$0.0..<$0.1].map { Unicode.Scalar($0)! })) }
    }

    func spans(_ regex: ScalarRegex, _ text: String, forceMemo: Bool, memoBits: Int = RegexScratch.memoBits) throws -> [(Int, Int)] {
        let scalars = text.unicodeScalars.map { $0.value }
        var out: [(Int, Int)] = []
        var scratch = RegexScratch()
        scratch.memoBitLimit = memoBits
        scalars.withUnsafeBufferPointer {
            let base = $0.baseAddress ?? UnsafePointer(bitPattern: 8)!
            if forceMemo {
                regex.memoMatches(base, 0, $0.count, from: 0, lastMatchEnd: -1, into: &out, scratch: &scratch)
            } else {
                regex.matches(base, 0, $0.count, into: &out, scratch: &scratch)
            }
        }
        if let failure = scratch.failure {
            throw TokenizerError.regexTooCostly(pattern: regex.shortPattern, scalars: failure.scalars, steps: failure.steps)
        }
        return out
    }

    /// Seconds `body` takes.
    func seconds(_ body: () throws -> Void) rethrows -> Double {
        let start = DispatchTime.now()
        try body()
        return Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
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

    func testMemoMatcherAgreesOnBacktrackingPatterns() throws {
        XCTAssertEqual(try matches(#"(a|ab)(c|bcd)(d*)"#, "abcd abcdd acd"), ["abcd", "abcdd", "acd"])
        XCTAssertEqual(try matches(#"(?:a|b)*?c"#, "ababc bc c"), ["ababc", "bc", "c"])
        XCTAssertEqual(try matches(#"x(?=a+b)|a"#, "xaab xa aa"), ["x", "a", "a", "a", "a", "a"])
        XCTAssertEqual(try matches(#"(?!ab)a\w?"#, "ab ac a"), ["ac", "a"])
        XCTAssertEqual(try matches(#"\s+(?!\S)|\s+"#, "a   b \n c  "), ["  ", " ", " \n", " ", "  "])
        XCTAssertEqual(try matches(#"(a{2,3}){1,2}?"#, "aaaaaaa"), ["aaa", "aaa"])
        XCTAssertEqual(try matches(#"^\s*$|x$"#, "  \nx\n\n"), ["  ", "x", "\n"])
        XCTAssertEqual(try matches(#"a*"#, "baac"), ["", "aa", ""])
    }

    func testCatastrophicPatternsStayLinear() throws {
        // Exponential for a plain backtracker (2^n paths); the memo matcher visits each state once.
        let text = String(repeating: "a", count: 5000) + "!"
        for pattern in [#"(a+)+$"#, #"(a|aa)+$"#, #"(?:a|a)+b"#, #"(a+)+(?=b)"#, #"((a+)+)+\d"#] {
            var found: [String] = []
            let elapsed = try seconds { found = try matches(pattern, text) }
            XCTAssertEqual(found, [], pattern)
            XCTAssertLessThan(elapsed, 2, "\(pattern): \(elapsed) s")
        }
        // Quadratic for a plain backtracker: every start in the run retries every shorter run.
        let spaces = String(repeating: " ", count: 200_000) + "1"
        var found: [String] = []
        let elapsed = try seconds { found = try matches(#"\s+$"#, spaces) }
        XCTAssertEqual(found, [])
        XCTAssertLessThan(elapsed, 2, "\\s+$: \(elapsed) s")
    }

    func testMemoMatcherAgreesOnTheFixtures() throws {
        // Every Split regex of both fixture tokenizers and GPT-2's, over every golden text; once
        // with a memo ring of a few columns, so that positions past the ring are exercised too.
        var regexes = [try ScalarRegex(PreTokenizerStep.gpt2Pattern)]
        for name in TokenizerFixtures.names {
            for step in try TokenizerFixtures.tokenizer(name).steps { if case let .split(r, _, _) = step { regexes.append(r) } }
        }
        let texts = try TokenizerFixtures.rows("deepseek-v2", "cases.jsonl").compactMap { $0["text"]?.stringValue }
        XCTAssertGreaterThan(texts.count, 500)
        var compared = 0
        for regex in regexes {
            for text in texts {
                let fast = try spans(regex, text, forceMemo: false)
                for bits in [RegexScratch.memoBits, 4 * regex.memoProgram.count] {
                    let memo = try spans(regex, text, forceMemo: true, memoBits: bits)
                    XCTAssertTrue(fast.elementsEqual(memo, by: ==), "/\(regex.shortPattern)/ on \(TokenizerFixtures.show(text))")
                    compared += 1
                }
            }
        }
        XCTAssertGreaterThan(compared, 5000)
    }

    func testStepLimitBeyondTheMemoRingIsAnError() throws {
        // With a ring of 4 columns, `(a|aa)+$` over 3000 scalars is exponential again: the limit stops it.
        let regex = try ScalarRegex(#"(a|aa)+$"#)
        let text = String(repeating: "a", count: 3000) + "!"
        XCTAssertThrowsError(try spans(regex, text, forceMemo: false, memoBits: 4 * regex.memoProgram.count)) { error in
            guard case let TokenizerError.regexTooCostly(_, scalars, _) = error else { return XCTFail("\(error)") }
            XCTAssertEqual(scalars, 3001)
        }
        XCTAssertEqual(try spans(regex, text, forceMemo: false).count, 0)
    }

    func testLargePatternsCompileAndMatch() throws {
        // 20k alternatives: literals need no bitmap; classes past the bitmap budget use their description.
        let literals = (0..<20_000).map { String(Unicode.Scalar(0x4E00 + $0)!) }
        XCTAssertEqual(try matches(literals.joined(separator: "|"), "a\u{4E00}b\u{9C1F}"), ["\u{4E00}", "\u{9C1F}"])
        let classes = (0..<20_000).map { "[\(literals[$0])x]" }
        XCTAssertEqual(try matches(classes.joined(separator: "|") + "|\\p{Lu}+", "\u{9C1F}xAB"), ["\u{9C1F}", "x", "AB"])
    }

    func testNestingAndSizeLimitsAreErrors() {
        let deep = String(repeating: "(", count: 20_000) + "a" + String(repeating: ")", count: 20_000)
        let deepClass = String(repeating: "[", count: 20_000) + "a" + String(repeating: "]", count: 20_000)
        for pattern in [deep, deepClass, "a{2}{2}{2}{2}{2}", "a{1000}{1000}{1000}", "((a{1000}){1000})"] {
            XCTAssertThrowsError(try ScalarRegex(pattern), String(pattern.prefix(40))) { error in
                guard case let TokenizerError.unsupportedRegex(shown, _) = error else { return XCTFail("\(error)") }
                XCTAssertLessThan(shown.unicodeScalars.count, 200, "long patterns are shortened in messages")
            }
        }
        XCTAssertNoThrow(try ScalarRegex(String(repeating: "(", count: 100) + "a" + String(repeating: ")", count: 100)))
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

    func testDuplicateIdsAreRejected() {
        let base = String(decoding: minimalTokenizer(), as: UTF8.self)
        let cases: [(String, String, String)] = [
            // Two vocabulary tokens with one id.
            (#""he": 256, "hel": 257}"#, #""he": 256, "hel": 256}"#, "both have id 256"),
            // One token listed twice.
            (#""he": 256, "hel": 257}"#, #""he": 256, "hel": 257, "he": 258}"#, "listed twice"),
            // An added token on the id of another vocabulary token.
            (#""id": 300, "content": "<|x|>""#, #""id": 257, "content": "<|x|>""#, "already the token"),
            // An added token whose content is a vocabulary token with another id.
            (#""id": 300, "content": "<|x|>""#, #""id": 300, "content": "hel""#, "already has id 257"),
        ]
        for (from, to, message) in cases {
            let data = Data(base.replacingOccurrences(of: from, with: to).utf8)
            XCTAssertThrowsError(try Tokenizer(tokenizerJSON: data, configJSON: nil), message) { error in
                guard case TokenizerError.invalidField = error else { return XCTFail("\(error)") }
                XCTAssertTrue("\(error)".contains(message), "\(error)")
            }
        }
        // An added token that repeats its vocabulary entry is consistent.
        let repeated = base.replacingOccurrences(of: #""id": 300, "content": "<|x|>""#, with: #""id": 257, "content": "hel""#)
        XCTAssertNoThrow(try Tokenizer(tokenizerJSON: Data(repeated.utf8), configJSON: nil))
    }

    func testMinimalTokenizerBothMergeFormsAndLstrip() throws {
        let t = try Tokenizer(tokenizerJSON: minimalTokenizer(), configJSON: nil)
        XCTAssertEqual(try t.encode("hello"), [257, 108, 111])   // "he" + "l" -> "hel", then l, o
        XCTAssertEqual(t.decode([257, 108, 111]), "hello")
        // lstrip: the spaces before the added token are absorbed into it.
        XCTAssertEqual(try t.encode("a   <|x|>b"), [97, 300, 98])
        XCTAssertEqual(t.decode([97, 300, 98], skipSpecialTokens: true), "ab")
    }

    func testByteLevelPrefixSpaceAndSplitBehaviors() throws {
        let prefixed = try Tokenizer(tokenizerJSON: minimalTokenizer(
            preTokenizer: #"{"type": "ByteLevel", "add_prefix_space": true, "use_regex": true}"#), configJSON: nil)
        XCTAssertEqual(try prefixed.encode("hello"), [32, 257, 108, 111])   // " hello": prefix space, then BPE
        // Removed drops the matches; MergedWithPrevious glues them to the piece before.
        let removed = try Tokenizer(tokenizerJSON: minimalTokenizer(preTokenizer: """
            {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"String": "-"}, "behavior": "Removed", "invert": false},
             {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}
            """), configJSON: nil)
        XCTAssertEqual(try removed.encode("he-l"), [256, 108])
        let merged = try Tokenizer(tokenizerJSON: minimalTokenizer(preTokenizer: """
            {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "l"}, "behavior": "MergedWithNext", "invert": false},
             {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}
            """), configJSON: nil)
        XCTAssertEqual(try merged.encode("hel"), [256, 108])   // "he" | "l": the match starts the next piece
    }

    func testLongPiecesUseTheHeapPathConsistently() throws {
        let t = try TokenizerFixtures.tokenizer("deepseek-v2")
        // 300 letters is one piece (> 64 symbols: heap merge); it must round-trip and agree with
        // pieces of the same text split by spaces being encoded separately in the cache.
        let long = String(repeating: "abcdefghij", count: 40)
        XCTAssertEqual(t.decode(try t.encode(long)), long)
        XCTAssertEqual(try t.encode(long), try t.encode(long))
        let text = "Ein Führer für 12,5 km² — 你好，世界！ 🙂\r\n\tend"
        XCTAssertTrue(TokenizerFixtures.same(t.decode(try t.encode(text)), text))
    }
}
