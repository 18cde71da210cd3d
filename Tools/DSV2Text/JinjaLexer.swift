/// Splits a Jinja template into text and tags, applying whitespace control the way jinja2 does
/// with transformers' settings: `{%-`/`-%}` (and `{{-`, `{#-`) strip all whitespace on that side;
/// `lstrip_blocks` removes spaces/tabs between a line start and a `{%`/`{#` tag (not after `{%+`);
/// `trim_blocks` removes the first newline after `%}`/`#}` (not after `+%}`); newlines in text are
/// normalized to `\n` and one trailing newline of the template is dropped (`keep_trailing_newline=False`).
enum JinjaToken {
    case text(String)
    case output([Unicode.Scalar], line: Int)     // inside {{ }}, and the template line it starts on
    case statement([Unicode.Scalar], line: Int)  // inside {% %}
}

enum JinjaLexer {
    static func tokenize(_ source: String) throws -> [JinjaToken] {
        var s = Array(source.unicodeScalars)
        // keep_trailing_newline=False
        if s.last == "\n" { s.removeLast(); if s.last == "\r" { s.removeLast() } }
        else if s.last == "\r" { s.removeLast() }
        var tokens: [JinjaToken] = []
        var text: [Unicode.Scalar] = []
        var stripNextLeading = false
        var lineStarting = true  // did the source consumed so far end with a newline?
        var i = 0
        // The template line (from 1) of scalar `i`, counted incrementally as `i` only grows.
        var counted = 0, currentLine = 1
        func line(at i: Int) -> Int {
            while counted < i { if s[counted] == "\n" { currentLine += 1 }; counted += 1 }
            return currentLine
        }

        // Python's str.isspace (jinja2 strips with str.rstrip and `\s`).
        func isSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || (0x1C...0x1F).contains(c.value) }
        func flushText() {
            if !text.isEmpty {
                // Normalize \r\n and \r to \n (jinja2's newline_sequence).
                var normalized = String.UnicodeScalarView()
                var k = 0
                while k < text.count {
                    if text[k] == "\r" {
                        normalized.append("\n")
                        if k + 1 < text.count && text[k + 1] == "\n" { k += 1 }
                    } else {
                        normalized.append(text[k])
                    }
                    k += 1
                }
                tokens.append(.text(String(normalized)))
            }
            text.removeAll()
        }

        while i < s.count {
            let c = s[i]
            if c == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" {
                let kind = s[i + 1]
                var j = i + 2
                var stripBefore = false, plus = false
                if j < s.count && s[j] == "-" { stripBefore = true; j += 1 }
                else if j < s.count && s[j] == "+" { plus = true; j += 1 }
                if stripBefore {
                    while let last = text.last, isSpace(last) { text.removeLast() }
                } else if (kind == "%" || kind == "#") && !plus {
                    // lstrip_blocks: strip spaces/tabs between the last newline (or a line start
                    // left by the previous tag) and this tag, if nothing else is there.
                    var lineStart = text.count
                    while lineStart > 0 && text[lineStart - 1] != "\n" { lineStart -= 1 }
                    if (lineStart > 0 || lineStarting) && text[lineStart...].allSatisfy({ $0 == " " || $0 == "\t" }) {
                        text.removeSubrange(lineStart...)
                    }
                }
                // Find the closing delimiter, skipping string literals.
                let close: Unicode.Scalar = kind == "{" ? "}" : (kind == "%" ? "%" : "#")
                var k = j
                var quote: Unicode.Scalar? = nil
                var end = -1
                while k < s.count {
                    let d = s[k]
                    if let q = quote {
                        if d == "\\" { k += 2; continue }
                        if d == q { quote = nil }
                    } else if kind != "#" && (d == "'" || d == "\"") {
                        quote = d
                    } else if d == close && k + 1 < s.count && s[k + 1] == "}" {
                        end = k
                        break
                    }
                    k += 1
                }
                guard end >= 0 else {
                    throw ChatTemplateError.located(line: line(at: i), .syntax("unclosed `{\(kind)` tag"))
                }
                var innerEnd = end
                var stripAfter = false, keepNewline = false
                if innerEnd > j && s[innerEnd - 1] == "-" { stripAfter = true; innerEnd -= 1 }
                else if innerEnd > j && s[innerEnd - 1] == "+" && kind != "{" { keepNewline = true; innerEnd -= 1 }
                flushText()
                let inner = Array(s[j..<innerEnd])
                if kind == "{" { tokens.append(.output(inner, line: line(at: i))) }
                else if kind == "%" {
                    let words = String(String.UnicodeScalarView(inner)).split(whereSeparator: { $0.isWhitespace })
                    if words.first == "raw" { throw ChatTemplateError.located(line: line(at: i), .unsupported("{% raw %}")) }
                    tokens.append(.statement(inner, line: line(at: i)))
                }
                i = end + 2
                lineStarting = false
                stripNextLeading = stripAfter
                if stripNextLeading {
                    while i < s.count && isSpace(s[i]) { lineStarting = s[i] == "\n" || s[i] == "\r"; i += 1 }
                } else if kind != "{" && !keepNewline {
                    // trim_blocks
                    if i < s.count && s[i] == "\n" { i += 1; lineStarting = true }
                    else if i + 1 < s.count && s[i] == "\r" && s[i + 1] == "\n" { i += 2; lineStarting = true }
                    else if i < s.count && s[i] == "\r" { i += 1; lineStarting = true }
                }
                continue
            }
            text.append(c)
            i += 1
        }
        flushText()
        return tokens
    }
}
