import XCTest
import TestSupport
@testable import DSV2Text

/// Jinja semantics beyond the DeepSeek template (trim_blocks, lstrip_blocks, scoping, errors).
final class ChatTemplateTests: XCTestCase {
    func render(_ source: String, _ messages: [ChatMessage] = [], prompt: Bool = false) throws -> String {
        try ChatTemplate(source).render(messages: messages, addGenerationPrompt: prompt, bosToken: "<s>", eosToken: "</s>")
    }

    func testWhitespaceControl() throws {
        // trim_blocks drops the newline after a block tag; lstrip_blocks the indentation before it.
        XCTAssertEqual(try render("{% if true %}\n  a\n  {% endif %}\nb"), "  a\nb")
        XCTAssertEqual(try render("x  {%- if true -%}  y  {%- endif %}"), "xy")
        XCTAssertEqual(try render("{{ 'a' }}\n{{ 'b' }}"), "a\nb")      // no trim after {{ }}
        XCTAssertEqual(try render("a\n"), "a")                            // keep_trailing_newline=False
        XCTAssertEqual(try render("  {%+ if true %}x{% endif %}"), "  x")
    }

    func testLoopsScopesAndNamespaces() throws {
        let messages = [ChatMessage(role: "system", content: "S"), ChatMessage(role: "user", content: "U"),
                        ChatMessage(role: "assistant", content: "A")]
        let source = """
            {% set ns = namespace(sys='') %}{% set outer = 'o' %}
            {% for m in messages %}{% set outer = 'inner' %}{% if m.role == 'system' %}{% set ns.sys = m['content'] %}{% continue %}{% endif %}
            [{{ loop.index }}/{{ loop.length }}{{ '!' if loop.last }}]{{ m.content | trim }}{% endfor %}
            {{ ns.sys }}{{ outer }}{{ messages[1:] | length }}{{ messages[-1]['role'] }}
            """
        // Every newline here follows a block tag, so trim_blocks removes all of them; the `set`
        // inside the loop does not leak (`outer` stays 'o'), the namespace attribute does.
        XCTAssertEqual(try render(source, messages), "[2/3]U[3/3!]ASo2assistant")
    }

    func testRaiseExceptionAndUnsupported() {
        XCTAssertThrowsError(try render("{{ raise_exception('roles must alternate') }}")) { error in
            XCTAssertEqual(error as? ChatTemplateError, .located(line: 1, .raised("roles must alternate")))
        }
        XCTAssertThrowsError(try ChatTemplate("{% macro f() %}{% endmacro %}")) { error in
            guard case .unsupported? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try render("{{ x | frobnicate }}")) { error in
            guard case let .unsupported(what)? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(error)") }
            XCTAssertTrue(what.contains("frobnicate"))
        }
        XCTAssertThrowsError(try ChatTemplate("{% if true %}open"))
    }

    func testDeepSeekTemplateWithoutGenerationPromptVariable() throws {
        let t = try TokenizerFixtures.tokenizer("deepseek-v2")
        let text = try t.renderChat([ChatMessage(role: "user", content: "Hi"), ChatMessage(role: "assistant", content: "Yo")],
                                    addGenerationPrompt: false)
        XCTAssertEqual(text, "<｜begin▁of▁sentence｜>User: Hi\n\nAssistant: Yo<｜end▁of▁sentence｜>")
        let ids = try t.encodeChat([ChatMessage(role: "user", content: "Hi")], addGenerationPrompt: true)
        XCTAssertEqual(ids.first, t.bosTokenId)
        XCTAssertEqual(ids.filter { $0 == t.bosTokenId }.count, 1, "BOS comes from the template only")
    }
}

/// Hostile or unusual templates: Python's integer semantics or a clear error, nesting limits,
/// the render budget, and errors that name the template line.
final class ChatTemplateLimitTests: XCTestCase {
    func render(_ source: String) throws -> String {
        try ChatTemplate(source).render(messages: [], addGenerationPrompt: false, bosToken: nil, eosToken: nil)
    }

    func testIntegerArithmeticFollowsPython() throws {
        // Expected values are Python 3's.
        let cases: [(String, String)] = [
            ("-7 // 2", "-4"), ("7 // -2", "-4"), ("-7 % 3", "2"), ("7 % -3", "-2"), ("-7 % -3", "-1"),
            ("2 ** 62", "4611686018427387904"), ("(-2) ** 63", "-9223372036854775808"), ("2 ** -1", "0.5"),
            ("7 / 2", "3.5"), ("(-9223372036854775807 - 1) % -1", "0"), ("9223372036854775807 // -1", "-9223372036854775807"),
            ("True + True", "2"), ("3 * 'ab'", "ababab"), ("'ab' * -1", ""), ("[1, 2] * 2", "[1, 2, 1, 2]"),
            ("'abc'[1::9223372036854775807]", "b"), ("'abcdef'[::-2]", "fdb"), ("'abc'[::-9223372036854775807]", "c"),
            ("range(-9223372036854775807 - 1, 9223372036854775807, 4611686018427387904) | list",
             "[-9223372036854775808, -4611686018427387904, 0, 4611686018427387904]"),
            ("range(5, 0, -2) | list", "[5, 3, 1]"), ("7.5 // 2", "3.0"), ("-7.5 % 2", "0.5"), ("1e3", "1000.0"),
            ("9223372036854775807 == 9223372036854775806", "False"), ("9223372036854775807 > 9223372036854775806", "True"),
            ("'99' | int + 1", "100"), ("' 42 ' | int", "42"), ("'3.7' | int", "3"), ("'x' | int", "0"),
            ("-3.9 | int", "-3"), ("-5 | abs", "5"), ("'nan' | float | int", "0"), ("(-9223372036854775807 - 1) is divisibleby(-1)", "True"),
        ]
        for (expression, expected) in cases {
            XCTAssertEqual(try render("{{ \(expression) }}"), expected, expression)
        }
    }

    func testIntegersBeyond64BitsAreErrors() {
        for expression in ["9223372036854775807 + 1", "-9223372036854775807 - 2", "4294967296 * 4294967296",
                           "-(-9223372036854775807 - 1)", "(-9223372036854775807 - 1) // -1", "2 ** 64",
                           "(-9223372036854775807 - 1) | abs", "'99999999999999999999' | int", "1e300 | int",
                           "0 ** -1", "1 // 0", "1 % 0"] {
            XCTAssertThrowsError(try render("{{ \(expression) }}"), expression) { error in
                guard case .runtime? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(expression): \(error)") }
            }
        }
        XCTAssertThrowsError(try ChatTemplate("{{ 99999999999999999999 }}")) { error in
            XCTAssertTrue("\(error)".contains("beyond 64 bits"), "\(error)")
        }
    }

    func testNestingLimitsAreSyntaxErrors() {
        let sources = [
            "{{ " + String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000) + " }}",
            "{{ " + String(repeating: "not ", count: 100_000) + "true }}",
            "{{ " + String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000) + " }}",
            "{{ " + String(repeating: "-", count: 100_000) + "1 }}",
            "{{ " + Array(repeating: "1", count: 100_000).joined(separator: " + ") + " }}",
            "{{ x" + String(repeating: ".a", count: 100_000) + " }}",
            "{{ x" + String(repeating: "|trim", count: 100_000) + " }}",
            String(repeating: "{% if true %}", count: 20_000) + "x" + String(repeating: "{% endif %}", count: 20_000),
        ]
        for source in sources {
            XCTAssertThrowsError(try ChatTemplate(source), String(source.prefix(30))) { error in
                guard case .syntax? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(error)") }
            }
        }
        // Within the limits, deep is fine.
        XCTAssertEqual(try render("{{ " + String(repeating: "(", count: 50) + "1" + String(repeating: ")", count: 50) + " }}"), "1")
        XCTAssertEqual(try render("{{ " + Array(repeating: "1", count: 200).joined(separator: " + ") + " }}"), "200")
    }

    func testRenderBudgetStopsRunawayTemplates() {
        let sources = [
            "{{ 'a' * 1000000000000 }}",
            "{{ ([1] * 1000000000000) | length }}",
            "{% set ns = namespace(s='a') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}{{ ns.s | length }}",
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            "{{ range(9223372036854775807) | length }}",
            "{{ range(100000) | join('x' * 100000) }}",
            "{{ ('x' * 100000) | replace('x', 'y' * 100000) }}",
        ]
        for source in sources {
            let start = DispatchTime.now()
            XCTAssertThrowsError(try render(source), source) { error in
                guard case .runtime? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(source): \(error)") }
            }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start.uptimeNanoseconds) / 1e9
            XCTAssertLessThan(seconds, 10, source)
        }
    }

    func testValuesCannotNestWithoutBound() {
        // Each pass wraps the list once more; printing or releasing it would recurse per level.
        let source = "{% set ns = namespace(l=[]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{{ ns.l }}"
        XCTAssertThrowsError(try render(source)) { error in XCTAssertTrue("\(error)".contains("nested more than"), "\(error)") }
        XCTAssertThrowsError(try render("{% set ns = namespace() %}{% set ns.me = ns %}")) { error in
            guard case .unsupported? = (error as? ChatTemplateError)?.withoutLine else { return XCTFail("\(error)") }
        }
    }

    func testRealTemplatesUseUnderOnePercentOfTheBudget() throws {
        for name in TokenizerFixtures.names {
            let tokenizer = try TokenizerFixtures.tokenizer(name)
            let template = try XCTUnwrap(tokenizer.chatTemplate)
            for row in try TokenizerFixtures.rows(name, "chat.jsonl") {
                let messages = TokenizerFixtures.messages(row["messages"]).map { m -> JinjaValue in
                    .dict([("role", .string(m.role)), ("content", .string(m.content))])
                }
                let (_, budget) = try template.renderCounting(variables: [
                    "messages": .list(messages), "bos_token": .string("<s>"), "eos_token": .string("</s>"),
                    "add_generation_prompt": .bool(row["add_generation_prompt"]?.boolValue ?? false)])
                XCTAssertLessThan(Double(budget.stepsUsed), 0.01 * Double(budget.totalSteps))
                XCTAssertLessThan(Double(budget.bytesUsed), 0.01 * Double(budget.totalBytes))
            }
        }
    }

    func testErrorsNameTheTemplateLine() throws {
        let source = "{% for m in messages %}\n{{ m.content }}\n{% endfor %}\n{{ 1 // 0 }}"
        XCTAssertThrowsError(try render(source)) { error in
            XCTAssertEqual(error as? ChatTemplateError, .located(line: 4, .runtime("integer division by zero")))
        }
        XCTAssertThrowsError(try ChatTemplate("a\nb\n{{ 1 +  }}")) { error in
            guard case .located(3, .syntax)? = error as? ChatTemplateError else { return XCTFail("\(error)") }
        }
    }
}
