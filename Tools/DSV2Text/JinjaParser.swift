/// Jinja expression and statement syntax trees, and their parser.
indirect enum JinjaExpr {
    case literal(JinjaValue)
    case name(String)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
    case attribute(JinjaExpr, String)
    case index(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], [(String, JinjaExpr)])
    case filter(JinjaExpr, String, [JinjaExpr], [(String, JinjaExpr)])
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case unary(String, JinjaExpr)            // not, -, +
    case binary(String, JinjaExpr, JinjaExpr) // + - * / // % ** ~ == != < > <= >= in notin and or
    case conditional(JinjaExpr, JinjaExpr, JinjaExpr?)  // body if cond else other
}

indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpr)
    case ifBlock([(JinjaExpr, [JinjaNode])], [JinjaNode]?)
    case forBlock(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], elseBody: [JinjaNode]?)
    case set(target: String, attribute: String?, value: JinjaExpr)
    case breakLoop
    case continueLoop
}

enum JinjaLexeme: Equatable {
    case name(String)
    case string(String)
    case integer(Int)
    case float(Double)
    case op(String)
}

/// Tokens of one tag's inside.
func jinjaLex(_ s: [Unicode.Scalar]) throws -> [JinjaLexeme] {
    var out: [JinjaLexeme] = []
    var i = 0
    let ops3: [String] = []
    let ops2 = ["==", "!=", "<=", ">=", "//", "**"]
    let ops1 = Set("+-*/%~<>()[]{}.,:|=".unicodeScalars)
    while i < s.count {
        let c = s[i]
        if c.properties.isWhitespace { i += 1; continue }
        if c == "'" || c == "\"" {
            var value = String.UnicodeScalarView()
            var j = i + 1
            var closed = false
            while j < s.count {
                let d = s[j]
                if d == c { closed = true; break }
                if d == "\\" && j + 1 < s.count {
                    let e = s[j + 1]
                    j += 2
                    switch e {
                    case "n": value.append("\n")
                    case "t": value.append("\t")
                    case "r": value.append("\r")
                    case "\\": value.append("\\")
                    case "'": value.append("'")
                    case "\"": value.append("\"")
                    case "0": value.append("\u{0}")
                    case "a": value.append("\u{7}")
                    case "b": value.append("\u{8}")
                    case "f": value.append("\u{C}")
                    case "v": value.append("\u{B}")
                    case "\n": break
                    case "x", "u", "U":
                        let n = e == "x" ? 2 : (e == "u" ? 4 : 8)
                        guard j + n <= s.count, let v = UInt32(String(String.UnicodeScalarView(s[j..<(j + n)])), radix: 16),
                              let scalar = Unicode.Scalar(v) else {
                            throw ChatTemplateError.syntax("bad \\\(e) escape in a string literal")
                        }
                        value.append(scalar)
                        j += n
                    default:
                        // Python keeps unknown escapes verbatim.
                        value.append("\\"); value.append(e)
                    }
                    continue
                }
                value.append(d)
                j += 1
            }
            guard closed else { throw ChatTemplateError.syntax("unterminated string literal") }
            out.append(.string(String(value)))
            i = j + 1
            continue
        }
        if c.properties.isAlphabetic || c == "_" {
            var j = i
            while j < s.count && (s[j].properties.isAlphabetic || s[j] == "_" || ("0"..."9").contains(s[j])) { j += 1 }
            out.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
            i = j
            continue
        }
        if ("0"..."9").contains(c) {
            var j = i
            var isFloat = false
            while j < s.count && (("0"..."9").contains(s[j]) || s[j] == "_" ||
                                  (s[j] == "." && !isFloat && j + 1 < s.count && ("0"..."9").contains(s[j + 1]))) {
                if s[j] == "." { isFloat = true }
                j += 1
            }
            let text = String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: "")
            if isFloat { out.append(.float(Double(text) ?? 0)) } else {
                guard let v = Int(text) else { throw ChatTemplateError.syntax("bad number `\(text)`") }
                out.append(.integer(v))
            }
            i = j
            continue
        }
        if i + 1 < s.count {
            let two = String(String.UnicodeScalarView([c, s[i + 1]]))
            if ops2.contains(two) || ops3.contains(two) { out.append(.op(two)); i += 2; continue }
        }
        if ops1.contains(c) { out.append(.op(String(c))); i += 1; continue }
        throw ChatTemplateError.syntax("unexpected character `\(c)`")
    }
    return out
}

/// Recursive-descent parser for Jinja expressions with jinja2's precedence.
struct JinjaExprParser {
    var lexemes: [JinjaLexeme]
    var index = 0

    init(_ lexemes: [JinjaLexeme]) { self.lexemes = lexemes }

    var atEnd: Bool { index >= lexemes.count }
    func peek(_ k: Int = 0) -> JinjaLexeme? { index + k < lexemes.count ? lexemes[index + k] : nil }
    func isOp(_ op: String, _ k: Int = 0) -> Bool { peek(k) == .op(op) }
    func isName(_ name: String, _ k: Int = 0) -> Bool { peek(k) == .name(name) }

    mutating func expectOp(_ op: String) throws {
        guard isOp(op) else { throw ChatTemplateError.syntax("expected `\(op)`, found \(describe(peek()))") }
        index += 1
    }

    mutating func expectName() throws -> String {
        guard case let .name(n)? = peek() else { throw ChatTemplateError.syntax("expected a name, found \(describe(peek()))") }
        index += 1
        return n
    }

    func describe(_ l: JinjaLexeme?) -> String {
        switch l {
        case nil: return "end of tag"
        case let .name(n)?: return "`\(n)`"
        case let .string(s)?: return "'\(s)'"
        case let .integer(v)?: return "\(v)"
        case let .float(v)?: return "\(v)"
        case let .op(o)?: return "`\(o)`"
        }
    }

    /// expression with an optional `if ... else ...`
    mutating func parseExpression(allowConditional: Bool = true) throws -> JinjaExpr {
        let body = try parseOr()
        if allowConditional && isName("if") {
            index += 1
            let condition = try parseOr()
            var other: JinjaExpr? = nil
            if isName("else") { index += 1; other = try parseExpression() }
            return .conditional(body, condition, other)
        }
        return body
    }

    mutating func parseOr() throws -> JinjaExpr {
        var left = try parseAnd()
        while isName("or") { index += 1; left = .binary("or", left, try parseAnd()) }
        return left
    }

    mutating func parseAnd() throws -> JinjaExpr {
        var left = try parseNot()
        while isName("and") { index += 1; left = .binary("and", left, try parseNot()) }
        return left
    }

    mutating func parseNot() throws -> JinjaExpr {
        if isName("not") { index += 1; return .unary("not", try parseNot()) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JinjaExpr {
        var left = try parseMath1()
        while true {
            if case let .op(o)? = peek(), ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                index += 1
                left = .binary(o, left, try parseMath1())
            } else if isName("in") {
                index += 1
                left = .binary("in", left, try parseMath1())
            } else if isName("not") && isName("in", 1) {
                index += 2
                left = .binary("notin", left, try parseMath1())
            } else {
                return left
            }
        }
    }

    mutating func parseMath1() throws -> JinjaExpr {
        var left = try parseConcat()
        while case let .op(o)? = peek(), o == "+" || o == "-" {
            index += 1
            left = .binary(o, left, try parseConcat())
        }
        return left
    }

    mutating func parseConcat() throws -> JinjaExpr {
        var left = try parseMath2()
        while isOp("~") { index += 1; left = .binary("~", left, try parseMath2()) }
        return left
    }

    mutating func parseMath2() throws -> JinjaExpr {
        var left = try parsePow()
        while case let .op(o)? = peek(), ["*", "/", "//", "%"].contains(o) {
            index += 1
            left = .binary(o, left, try parsePow())
        }
        return left
    }

    mutating func parsePow() throws -> JinjaExpr {
        var left = try parseUnary(withFilter: true)
        while isOp("**") { index += 1; left = .binary("**", left, try parseUnary(withFilter: true)) }
        return left
    }

    mutating func parseUnary(withFilter: Bool) throws -> JinjaExpr {
        var node: JinjaExpr
        if isOp("-") { index += 1; node = .unary("-", try parseUnary(withFilter: false)) }
        else if isOp("+") { index += 1; node = .unary("+", try parseUnary(withFilter: false)) }
        else { node = try parsePrimary() }
        node = try parsePostfix(node)
        if withFilter { node = try parseFilterExpr(node) }
        return node
    }

    mutating func parsePrimary() throws -> JinjaExpr {
        guard let token = peek() else { throw ChatTemplateError.syntax("expected an expression, found end of tag") }
        index += 1
        switch token {
        case let .string(s):
            // Adjacent string literals concatenate.
            var value = s
            while case let .string(more)? = peek() { value += more; index += 1 }
            return .literal(.string(value))
        case let .integer(v): return .literal(.int(v))
        case let .float(v): return .literal(.double(v))
        case let .name(n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            if isOp(")") { index += 1; return .list([]) }  // empty tuple
            let first = try parseExpression()
            if isOp(",") {
                var items = [first]
                while isOp(",") { index += 1; if isOp(")") { break }; items.append(try parseExpression()) }
                try expectOp(")")
                return .list(items)
            }
            try expectOp(")")
            return first
        case .op("["):
            var items: [JinjaExpr] = []
            while !isOp("]") {
                items.append(try parseExpression())
                if isOp(",") { index += 1 } else { break }
            }
            try expectOp("]")
            return .list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !isOp("}") {
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
                if isOp(",") { index += 1 } else { break }
            }
            try expectOp("}")
            return .dict(pairs)
        default:
            throw ChatTemplateError.syntax("unexpected \(describe(token))")
        }
    }

    mutating func parsePostfix(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp(".") {
                index += 1
                if case let .integer(v)? = peek() { index += 1; node = .index(node, .literal(.int(v))); continue }
                node = .attribute(node, try expectName())
            } else if isOp("[") {
                index += 1
                node = try parseSubscript(node)
            } else if isOp("(") {
                index += 1
                let (args, kwargs) = try parseArguments()
                node = .call(node, args, kwargs)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ target: JinjaExpr) throws -> JinjaExpr {
        var parts: [JinjaExpr?] = [nil]
        var isSlice = false
        while !isOp("]") {
            if isOp(":") { index += 1; isSlice = true; parts.append(nil); continue }
            guard case .none = parts[parts.count - 1] else { throw ChatTemplateError.syntax("bad subscript") }
            parts[parts.count - 1] = try parseExpression()
        }
        try expectOp("]")
        if !isSlice {
            guard let key = parts[0] else { throw ChatTemplateError.syntax("empty subscript") }
            return .index(target, key)
        }
        guard parts.count <= 3 else { throw ChatTemplateError.syntax("bad slice") }
        return .slice(target, parts[0], parts.count > 1 ? parts[1] : nil, parts.count > 2 ? parts[2] : nil)
    }

    /// After `(`: positional and keyword arguments up to `)`.
    mutating func parseArguments() throws -> ([JinjaExpr], [(String, JinjaExpr)]) {
        var args: [JinjaExpr] = []
        var kwargs: [(String, JinjaExpr)] = []
        while !isOp(")") {
            if case let .name(n)? = peek(), isOp("=", 1) {
                index += 2
                kwargs.append((n, try parseExpression()))
            } else {
                args.append(try parseExpression())
            }
            if isOp(",") { index += 1 } else { break }
        }
        try expectOp(")")
        return (args, kwargs)
    }

    mutating func parseFilterExpr(_ start: JinjaExpr) throws -> JinjaExpr {
        var node = start
        while true {
            if isOp("|") {
                index += 1
                let name = try expectName()
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                if isOp("(") { index += 1; (args, kwargs) = try parseArguments() }
                node = .filter(node, name, args, kwargs)
            } else if isName("is") {
                index += 1
                var negated = false
                if isName("not") { index += 1; negated = true }
                let name = try expectName()
                var args: [JinjaExpr] = []
                if isOp("(") {
                    index += 1
                    args = try parseArguments().0
                } else if let next = peek(), !isName("and"), !isName("or"), !isName("else"), !isName("if"),
                          !isName("in"), !isName("not"), !isName("is") {
                    // `is divisibleby 3`, `is sameas none`: one bare argument.
                    switch next {
                    case .string, .integer, .float, .name: args = [try parsePrimary()]
                    default: break
                    }
                }
                node = .test(node, name, args, negated: negated)
            } else {
                return node
            }
        }
    }
}

/// Builds the node tree from the lexer's tokens.
struct JinjaTemplateParser {
    let tokens: [JinjaToken]
    var index = 0

    init(tokens: [JinjaToken]) { self.tokens = tokens }

    /// Parses nodes until a statement whose first word is in `terminators`; leaves it unconsumed.
    mutating func parseBody(until terminators: Set<String>) throws -> [JinjaNode] {
        var nodes: [JinjaNode] = []
        while index < tokens.count {
            switch tokens[index] {
            case let .text(t):
                nodes.append(.text(t)); index += 1
            case let .output(source):
                var parser = JinjaExprParser(try jinjaLex(source))
                let expr = try parser.parseExpression()
                guard parser.atEnd else { throw ChatTemplateError.syntax("unexpected \(parser.describe(parser.peek())) in {{ }}") }
                nodes.append(.output(expr)); index += 1
            case let .statement(source):
                let lexemes = try jinjaLex(source)
                guard case let .name(keyword)? = lexemes.first else { throw ChatTemplateError.syntax("empty {% %} tag") }
                if terminators.contains(keyword) { return nodes }
                index += 1
                var parser = JinjaExprParser(lexemes)
                parser.index = 1
                nodes.append(try parseStatement(keyword, &parser))
            }
        }
        if !terminators.isEmpty {
            throw ChatTemplateError.syntax("missing {% \(terminators.sorted().joined(separator: " / ")) %}")
        }
        return nodes
    }

    /// The keyword of the current (terminator) statement, consumed.
    mutating func takeTerminator() throws -> (String, JinjaExprParser) {
        guard index < tokens.count, case let .statement(source) = tokens[index] else {
            throw ChatTemplateError.syntax("unexpected end of template")
        }
        index += 1
        let lexemes = try jinjaLex(source)
        guard case let .name(keyword)? = lexemes.first else { throw ChatTemplateError.syntax("empty tag") }
        var parser = JinjaExprParser(lexemes)
        parser.index = 1
        return (keyword, parser)
    }

    func finish(_ parser: JinjaExprParser, _ what: String) throws {
        guard parser.atEnd else { throw ChatTemplateError.syntax("unexpected \(parser.describe(parser.peek())) in {% \(what) %}") }
    }

    mutating func parseStatement(_ keyword: String, _ parser: inout JinjaExprParser) throws -> JinjaNode {
        switch keyword {
        case "if":
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var condition = try parser.parseExpression()
            try finish(parser, "if")
            var elseBody: [JinjaNode]? = nil
            while true {
                let body = try parseBody(until: ["elif", "else", "endif"])
                branches.append((condition, body))
                var (word, p) = try takeTerminator()
                if word == "elif" {
                    condition = try p.parseExpression()
                    try finish(p, "elif")
                    continue
                }
                if word == "else" {
                    try finish(p, "else")
                    elseBody = try parseBody(until: ["endif"])
                    (word, p) = try takeTerminator()
                }
                try finish(p, "endif")
                break
            }
            return .ifBlock(branches, elseBody)
        case "for":
            var targets = [try parser.expectName()]
            while parser.isOp(",") { parser.index += 1; targets.append(try parser.expectName()) }
            guard parser.isName("in") else { throw ChatTemplateError.syntax("expected `in` in {% for %}") }
            parser.index += 1
            let iterable = try parser.parseExpression(allowConditional: false)
            var condition: JinjaExpr? = nil
            if parser.isName("if") { parser.index += 1; condition = try parser.parseExpression(allowConditional: false) }
            if parser.isName("recursive") { throw ChatTemplateError.unsupported("recursive for loop") }
            try finish(parser, "for")
            let body = try parseBody(until: ["else", "endfor"])
            var (word, p) = try takeTerminator()
            var elseBody: [JinjaNode]? = nil
            if word == "else" {
                try finish(p, "else")
                elseBody = try parseBody(until: ["endfor"])
                (word, p) = try takeTerminator()
            }
            try finish(p, "endfor")
            return .forBlock(targets: targets, iterable: iterable, condition: condition, body: body, elseBody: elseBody)
        case "set":
            let name = try parser.expectName()
            var attribute: String? = nil
            if parser.isOp(".") { parser.index += 1; attribute = try parser.expectName() }
            if parser.isOp(",") { throw ChatTemplateError.unsupported("tuple assignment in {% set %}") }
            guard parser.isOp("=") else { throw ChatTemplateError.unsupported("block {% set %} (without `=`)") }
            parser.index += 1
            let value = try parser.parseExpression()
            try finish(parser, "set")
            return .set(target: name, attribute: attribute, value: value)
        case "break": try finish(parser, "break"); return .breakLoop
        case "continue": try finish(parser, "continue"); return .continueLoop
        case "generation":
            // transformers' AssistantTracker: renders its body unchanged.
            try finish(parser, "generation")
            let body = try parseBody(until: ["endgeneration"])
            _ = try takeTerminator()
            return .ifBlock([(.literal(.bool(true)), body)], nil)
        default:
            throw ChatTemplateError.unsupported("{% \(keyword) %}")
        }
    }
}
