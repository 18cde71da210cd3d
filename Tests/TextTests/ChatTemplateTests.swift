import XCTest
import TestSupport
import DSV2Text

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
            XCTAssertEqual(error as? ChatTemplateError, .raised("roles must alternate"))
        }
        XCTAssertThrowsError(try ChatTemplate("{% macro f() %}{% endmacro %}")) { error in
            guard case ChatTemplateError.unsupported = error else { return XCTFail("\(error)") }
        }
        XCTAssertThrowsError(try render("{{ x | frobnicate }}")) { error in
            guard case let ChatTemplateError.unsupported(what) = error else { return XCTFail("\(error)") }
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
