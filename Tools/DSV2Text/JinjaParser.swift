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

/// Statements; `line` is the template line of the tag, for errors.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpr, line: Int)
    case ifBlock([(JinjaExpr, [JinjaNode])], [JinjaNode]?, line: Int)
    case forBlock(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], elseBody: [JinjaNode]?,
                  line: Int)
    case set(target: String, attribute: String?, value: JinjaExpr, line: Int)
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
            func digit(_ k: Int) -> Bool { k < s.count && ("0"..."9").contains(s[k]) }
            while j < s.count && (digit(j) || s[j] == "_" || (s[j] == "." && !isFloat && digit(j + 1))) {
                if s[j] == "." { isFloat = true }
                j += 1
            }
            // An exponent: `1e3`, `2.5E-4` (jinja2's float syntax).
            if j < s.count && (s[j] == "e" || s[j] == "E") {
                let sign = j + 1 < s.count && (s[j + 1] == "+" || s[j + 1] == "-") ? 1 : 0
                if digit(j + 1 + sign) {
                    isFloat = true
                    j += 1 + sign
                    while digit(j) || (j < s.count && s[j] == "_") { j += 1 }
                }
            }
            let text = String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: "")
            if isFloat {
                guard let v = Double(text) else { throw ChatTemplateError.syntax("bad number `\(text.prefix(40))`") }
                out.append(.float(v))
            } else {
                guard let v = Int(text) else {
                    throw ChatTemplateError.syntax("integer `\(text.prefix(40))` beyond 64 bits (Python would use a big integer)")
                }
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
///
/// Bounded so that neither this parser, the interpreter nor the tree's release can run off the
/// stack: at most `maxNesting` nested parentheses, brackets, `not` and unary signs, and trees at
/// most `maxHeight` high (a chain of 100k `+` is 100k high even without any parenthesis).
struct JinjaExprParser {
    static let maxNesting = 64
    static let maxHeight = 256

    /// An expression and the height of its tree.
    typealias Node = (expr: JinjaExpr, height: Int)

    var lexemes: [JinjaLexeme]
    var index = 0
    private var nesting = 0

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
        case let .string(s)?: return "'\(s.prefix(40))'"
        case let .integer(v)?: return "\(v)"
        case let .float(v)?: return "\(v)"
        case let .op(o)?: return "`\(o)`"
        }
    }

    /// `expr` over children of the given heights, checked against `maxHeight`.
    private func node(_ expr: JinjaExpr, _ heights: Int...) throws -> Node {
        let height = (heights.max() ?? 0) + 1
        guard height <= JinjaExprParser.maxHeight else {
            throw ChatTemplateError.syntax("expression nested more than \(JinjaExprParser.maxHeight) levels deep")
        }
        return (expr, height)
    }

    /// One more level of recursion (parenthesis, bracket, `not`, sign), checked against `maxNesting`.
    private mutating func nested<T>(_ body: (inout JinjaExprParser) throws -> T) throws -> T {
        nesting += 1
        defer { nesting -= 1 }
        guard nesting <= JinjaExprParser.maxNesting else {
            throw ChatTemplateError.syntax("expression nested more than \(JinjaExprParser.maxNesting) levels deep")
        }
        return try body(&self)
    }

    /// expression with an optional `if ... else ...`
    mutating func parseExpression(allowConditional: Bool = true) throws -> JinjaExpr {
        try parseNode(allowConditional: allowConditional).expr
    }

    mutating func parseNode(allowConditional: Bool = true) throws -> Node {
        try nested { parser in
            let body = try parser.parseOr()
            if allowConditional && parser.isName("if") {
                parser.index += 1
                let condition = try parser.parseOr()
                var other: Node? = nil
                if parser.isName("else") { parser.index += 1; other = try parser.parseNode() }
                return try parser.node(.conditional(body.expr, condition.expr, other?.expr),
                                       body.height, condition.height, other?.height ?? 0)
            }
            return body
        }
    }

    /// A left-associative chain `operand (op operand)*` of one precedence level.
    private mutating func chain(_ operand: (inout JinjaExprParser) throws -> Node,
                                _ op: (JinjaExprParser) -> (name: String, width: Int)?) throws -> Node {
        var left = try operand(&self)
        while let (name, width) = op(self) {
            index += width
            let right = try operand(&self)
            left = try node(.binary(name, left.expr, right.expr), left.height, right.height)
        }
        return left
    }

    mutating func parseOr() throws -> Node {
        try chain({ try $0.parseAnd() }) { $0.isName("or") ? ("or", 1) : nil }
    }

    mutating func parseAnd() throws -> Node {
        try chain({ try $0.parseNot() }) { $0.isName("and") ? ("and", 1) : nil }
    }

    mutating func parseNot() throws -> Node {
        if isName("not") {
            index += 1
            let operand = try nested { try $0.parseNot() }
            return try node(.unary("not", operand.expr), operand.height)
        }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> Node {
        try chain({ try $0.parseMath1() }) { parser in
            if case let .op(o)? = parser.peek(), ["==", "!=", "<", ">", "<=", ">="].contains(o) { return (o, 1) }
            if parser.isName("in") { return ("in", 1) }
            if parser.isName("not") && parser.isName("in", 1) { return ("notin", 2) }
            return nil
        }
    }

    mutating func parseMath1() throws -> Node {
        try chain({ try $0.parseConcat() }) { parser in
            if case let .op(o)? = parser.peek(), o == "+" || o == "-" { return (o, 1) }
            return nil
        }
    }

    mutating func parseConcat() throws -> Node {
        try chain({ try $0.parseMath2() }) { $0.isOp("~") ? ("~", 1) : nil }
    }

    mutating func parseMath2() throws -> Node {
        try chain({ try $0.parsePow() }) { parser in
            if case let .op(o)? = parser.peek(), ["*", "/", "//", "%"].contains(o) { return (o, 1) }
            return nil
        }
    }

    mutating func parsePow() throws -> Node {
        try chain({ try $0.parseUnary(withFilter: true) }) { $0.isOp("**") ? ("**", 1) : nil }
    }

    mutating func parseUnary(withFilter: Bool) throws -> Node {
        var current: Node
        if isOp("-") || isOp("+") {
            let sign = isOp("-") ? "-" : "+"
            index += 1
            let operand = try nested { try $0.parseUnary(withFilter: false) }
            current = try node(.unary(sign, operand.expr), operand.height)
        } else {
            current = try parsePrimary()
        }
        current = try parsePostfix(current)
        if withFilter { current = try parseFilterExpr(current) }
        return current
    }

    mutating func parsePrimary() throws -> Node {
        guard let token = peek() else { throw ChatTemplateError.syntax("expected an expression, found end of tag") }
        index += 1
        switch token {
        case let .string(s):
            // Adjacent string literals concatenate.
            var value = s
            while case let .string(more)? = peek() { value += more; index += 1 }
            return (.literal(.string(value)), 1)
        case let .integer(v): return (.literal(.int(v)), 1)
        case let .float(v): return (.literal(.double(v)), 1)
        case let .name(n):
            switch n {
            case "true", "True": return (.literal(.bool(true)), 1)
            case "false", "False": return (.literal(.bool(false)), 1)
            case "none", "None": return (.literal(.none), 1)
            default: return (.name(n), 1)
            }
        case .op("("):
            if isOp(")") { index += 1; return (.list([]), 1) }  // empty tuple
            let first = try parseNode()
            if isOp(",") {
                var items = [first]
                while isOp(",") { index += 1; if isOp(")") { break }; items.append(try parseNode()) }
                try expectOp(")")
                return try list(items)
            }
            try expectOp(")")
            return first
        case .op("["):
            var items: [Node] = []
            while !isOp("]") {
                items.append(try parseNode())
                if isOp(",") { index += 1 } else { break }
            }
            try expectOp("]")
            return try list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            var height = 0
            while !isOp("}") {
                let key = try parseNode()
                try expectOp(":")
                let value = try parseNode()
                pairs.append((key.expr, value.expr))
                height = max(height, key.height, value.height)
                if isOp(",") { index += 1 } else { break }
            }
            try expectOp("}")
            return try node(.dict(pairs), height)
        default:
            throw ChatTemplateError.syntax("unexpected \(describe(token))")
        }
    }

    private func list(_ items: [Node]) throws -> Node {
        try node(.list(items.map(\.expr)), items.map(\.height).max() ?? 0)
    }

    mutating func parsePostfix(_ start: Node) throws -> Node {
        var current = start
        while true {
            if isOp(".") {
                index += 1
                if case let .integer(v)? = peek() {
                    index += 1
                    current = try node(.index(current.expr, .literal(.int(v))), current.height, 1)
                    continue
                }
                current = try node(.attribute(current.expr, try expectName()), current.height)
            } else if isOp("[") {
                index += 1
                current = try parseSubscript(current)
            } else if isOp("(") {
                index += 1
                let (args, kwargs, height) = try parseArguments()
                current = try node(.call(current.expr, args, kwargs), current.height, height)
            } else {
                return current
            }
        }
    }

    mutating func parseSubscript(_ target: Node) throws -> Node {
        var parts: [Node?] = [nil]
        var isSlice = false
        while !isOp("]") {
            if isOp(":") { index += 1; isSlice = true; parts.append(nil); continue }
            guard case .none = parts[parts.count - 1] else { throw ChatTemplateError.syntax("bad subscript") }
            parts[parts.count - 1] = try parseNode()
        }
        try expectOp("]")
        let height = parts.map { $0?.height ?? 0 }.max() ?? 0
        if !isSlice {
            guard let key = parts[0] else { throw ChatTemplateError.syntax("empty subscript") }
            return try node(.index(target.expr, key.expr), target.height, key.height)
        }
        guard parts.count <= 3 else { throw ChatTemplateError.syntax("bad slice") }
        return try node(.slice(target.expr, parts[0]?.expr, parts.count > 1 ? parts[1]?.expr : nil,
                               parts.count > 2 ? parts[2]?.expr : nil), target.height, height)
    }

    /// After `(`: positional and keyword arguments up to `)`, and the greatest height among them.
    mutating func parseArguments() throws -> ([JinjaExpr], [(String, JinjaExpr)], Int) {
        var args: [JinjaExpr] = []
        var kwargs: [(String, JinjaExpr)] = []
        var height = 0
        while !isOp(")") {
            if case let .name(n)? = peek(), isOp("=", 1) {
                index += 2
                let value = try parseNode()
                kwargs.append((n, value.expr))
                height = max(height, value.height)
            } else {
                let value = try parseNode()
                args.append(value.expr)
                height = max(height, value.height)
            }
            if isOp(",") { index += 1 } else { break }
        }
        try expectOp(")")
        return (args, kwargs, height)
    }

    mutating func parseFilterExpr(_ start: Node) throws -> Node {
        var current = start
        while true {
            if isOp("|") {
                index += 1
                let name = try expectName()
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                var height = 0
                if isOp("(") { index += 1; (args, kwargs, height) = try parseArguments() }
                current = try node(.filter(current.expr, name, args, kwargs), current.height, height)
            } else if isName("is") {
                index += 1
                var negated = false
                if isName("not") { index += 1; negated = true }
                let name = try expectName()
                var args: [JinjaExpr] = []
                var height = 0
                if isOp("(") {
                    index += 1
                    (args, _, height) = try parseArguments()
                } else if let next = peek(), !isName("and"), !isName("or"), !isName("else"), !isName("if"),
                          !isName("in"), !isName("not"), !isName("is") {
                    // `is divisibleby 3`, `is sameas none`: one bare argument.
                    switch next {
                    case .string, .integer, .float, .name:
                        let argument = try parsePrimary()
                        args = [argument.expr]
                        height = argument.height
                    default: break
                    }
                }
                current = try node(.test(current.expr, name, args, negated: negated), current.height, height)
            } else {
                return current
            }
        }
    }
}

/// Builds the node tree from the lexer's tokens.
struct JinjaTemplateParser {
    /// `if`/`for` blocks nested deeper than this are an error (the parser, the interpreter and
    /// the tree's release all recurse once per level).
    static let maxBlockNesting = 100

    let tokens: [JinjaToken]
    var index = 0
    private var blockDepth = 0

    init(tokens: [JinjaToken]) { self.tokens = tokens }

    /// Parses nodes until a statement whose first word is in `terminators`; leaves it unconsumed.
    mutating func parseBody(until terminators: Set<String>) throws -> [JinjaNode] {
        var nodes: [JinjaNode] = []
        while index < tokens.count {
            switch tokens[index] {
            case let .text(t):
                nodes.append(.text(t)); index += 1
            case let .output(source, line):
                try JinjaTemplateParser.at(line) {
                    var parser = JinjaExprParser(try jinjaLex(source))
                    let expr = try parser.parseExpression()
                    guard parser.atEnd else { throw ChatTemplateError.syntax("unexpected \(parser.describe(parser.peek())) in {{ }}") }
                    nodes.append(.output(expr, line: line))
                }
                index += 1
            case let .statement(source, line):
                let lexemes = try JinjaTemplateParser.at(line) { try jinjaLex(source) }
                guard case let .name(keyword)? = lexemes.first else {
                    throw ChatTemplateError.located(line: line, .syntax("empty {% %} tag"))
                }
                if terminators.contains(keyword) { return nodes }
                index += 1
                var parser = JinjaExprParser(lexemes)
                parser.index = 1
                let node = try JinjaTemplateParser.at(line) { try parseStatement(keyword, &parser, line: line) }
                nodes.append(node)
            }
        }
        if !terminators.isEmpty {
            throw ChatTemplateError.syntax("missing {% \(terminators.sorted().joined(separator: " / ")) %} at the end of the template")
        }
        return nodes
    }

    /// `body`'s result; a `ChatTemplateError` without a line gets `line`.
    static func at<T>(_ line: Int, _ body: () throws -> T) throws -> T {
        do { return try body() } catch let error as ChatTemplateError {
            if case .located = error { throw error }
            throw ChatTemplateError.located(line: line, error)
        }
    }

    /// The keyword of the current (terminator) statement, consumed.
    mutating func takeTerminator() throws -> (String, JinjaExprParser) {
        guard index < tokens.count, case let .statement(source, line) = tokens[index] else {
            throw ChatTemplateError.syntax("unexpected end of template")
        }
        index += 1
        let lexemes = try JinjaTemplateParser.at(line) { try jinjaLex(source) }
        guard case let .name(keyword)? = lexemes.first else { throw ChatTemplateError.syntax("empty tag") }
        var parser = JinjaExprParser(lexemes)
        parser.index = 1
        return (keyword, parser)
    }

    func finish(_ parser: JinjaExprParser, _ what: String) throws {
        guard parser.atEnd else { throw ChatTemplateError.syntax("unexpected \(parser.describe(parser.peek())) in {% \(what) %}") }
    }

    mutating func parseStatement(_ keyword: String, _ parser: inout JinjaExprParser, line: Int) throws -> JinjaNode {
        blockDepth += 1
        defer { blockDepth -= 1 }
        guard blockDepth <= JinjaTemplateParser.maxBlockNesting else {
            throw ChatTemplateError.syntax("blocks nested more than \(JinjaTemplateParser.maxBlockNesting) deep")
        }
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
            return .ifBlock(branches, elseBody, line: line)
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
            return .forBlock(targets: targets, iterable: iterable, condition: condition, body: body, elseBody: elseBody,
                             line: line)
        case "set":
            let name = try parser.expectName()
            var attribute: String? = nil
            if parser.isOp(".") { parser.index += 1; attribute = try parser.expectName() }
            if parser.isOp(",") { throw ChatTemplateError.unsupported("tuple assignment in {% set %}") }
            guard parser.isOp("=") else { throw ChatTemplateError.unsupported("block {% set %} (without `=`)") }
            parser.index += 1
            let value = try parser.parseExpression()
            try finish(parser, "set")
            return .set(target: name, attribute: attribute, value: value, line: line)
        case "break": try finish(parser, "break"); return .breakLoop
        case "continue": try finish(parser, "continue"); return .continueLoop
        case "generation":
            // transformers' AssistantTracker: renders its body unchanged.
            try finish(parser, "generation")
            let body = try parseBody(until: ["endgeneration"])
            _ = try takeTerminator()
            return .ifBlock([(.literal(.bool(true)), body)], nil, line: line)
        default:
            throw ChatTemplateError.unsupported("{% \(keyword) %}")
        }
    }
}
