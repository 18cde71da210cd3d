import Foundation

/// Operators, filters, tests, global functions and string/dict methods chat templates use.
enum JinjaBuiltins {
    static func string(_ v: JinjaValue, _ what: String) throws -> String {
        guard case let .string(s) = v else { throw ChatTemplateError.runtime("\(what) expects a string, got \(v.typeName)") }
        return s
    }

    /// Python `str.strip()` whitespace.
    static func isPythonSpace(_ c: Unicode.Scalar) -> Bool { c.properties.isWhitespace || (0x1C...0x1F).contains(c.value) }

    static func strip(_ s: String, leading: Bool, trailing: Bool, chars: String? = nil) -> String {
        var scalars = Array(s.unicodeScalars)
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set?.contains(c) ?? isPythonSpace(c) }
        if trailing { while let last = scalars.last, strippable(last) { scalars.removeLast() } }
        if leading {
            var k = 0
            while k < scalars.count && strippable(scalars[k]) { k += 1 }
            scalars.removeFirst(k)
        }
        return String(String.UnicodeScalarView(scalars))
    }

    static func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue, budget: inout JinjaBudget) throws -> JinjaValue {
        if a.isUndefined || b.isUndefined, !["==", "!=", "~", "in", "notin"].contains(op) {
            let name: String
            if case let .undefined(n) = a { name = n } else if case let .undefined(n) = b { name = n } else { name = "?" }
            throw ChatTemplateError.runtime("`\(name)` is undefined (operand of `\(op)`)")
        }
        switch op {
        case "==": return .bool(a.equals(b))
        case "!=": return .bool(!a.equals(b))
        case "~":
            let (x, y) = (a.rendered, b.rendered)
            try budget.ensure(x.utf8.count + y.utf8.count)
            return .string(x + y)
        case "in", "notin":
            let found = try contains(b, a)
            return .bool(op == "in" ? found : !found)
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)):
                try budget.ensure(x.utf8.count + y.utf8.count)
                return .string(x + y)
            case let (.list(x), .list(y)):
                try budget.ensure(x.count + y.count, times: JinjaBudget.bytesPerElement)
                return .list(x + y)
            default: break
            }
        case "*":
            // Repetition, either way round (Python's `3 * 'ab'` too); a negative count gives nothing.
            if case let .string(text) = a, let n = integer(b) { return .string(try repeated(text, n, &budget)) }
            if case let .string(text) = b, let n = integer(a) { return .string(try repeated(text, n, &budget)) }
            if case let .list(items) = a, let n = integer(b) { return .list(try repeated(items, n, &budget)) }
            if case let .list(items) = b, let n = integer(a) { return .list(try repeated(items, n, &budget)) }
        case "<", ">", "<=", ">=":
            if case let .string(x) = a, case let .string(y) = b {
                let xs = Array(x.unicodeScalars.map { $0.value }), ys = Array(y.unicodeScalars.map { $0.value })
                return .bool(holds(op, xs.lexicographicallyPrecedes(ys) ? -1 : (xs == ys ? 0 : 1)))
            }
        default: break
        }
        return try arithmetic(op, a, b)
    }

    /// Numbers: integers exactly, with Python's semantics (floor division and modulo take the sign
    /// of the divisor, `**` of a negative exponent is a float); a result beyond 64 bits, where
    /// Python would switch to a big integer, is an error. Floats as Python's floats.
    static func arithmetic(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        guard let x = a.numeric, let y = b.numeric, !isString(a), !isString(b) else {
            throw ChatTemplateError.runtime("unsupported operands for \(op): \(a.typeName) and \(b.typeName)")
        }
        if let i = integer(a), let j = integer(b) {
            switch op {
            case "<", ">", "<=", ">=": return .bool(holds(op, i < j ? -1 : (i == j ? 0 : 1)))
            case "+": return .int(try checked(i.addingReportingOverflow(j), i, op, j))
            case "-": return .int(try checked(i.subtractingReportingOverflow(j), i, op, j))
            case "*": return .int(try checked(i.multipliedReportingOverflow(by: j), i, op, j))
            case "/":
                guard j != 0 else { throw ChatTemplateError.runtime("division by zero") }
                return .double(x / y)
            case "//":
                guard j != 0 else { throw ChatTemplateError.runtime("integer division by zero") }
                let (q, overflow) = i.dividedReportingOverflow(by: j)
                if overflow { throw overflowError(i, op, j) }
                return .int(i % j != 0 && (i < 0) != (j < 0) ? q - 1 : q)
            case "%":
                guard j != 0 else { throw ChatTemplateError.runtime("integer modulo by zero") }
                if j == -1 { return .int(0) }  // Int.min % -1 would trap; the answer is 0
                let r = i % j
                return .int(r != 0 && (r < 0) != (j < 0) ? r + j : r)
            case "**":
                if j >= 0 { return .int(try power(i, j)) }
                guard i != 0 else { throw ChatTemplateError.runtime("0 cannot be raised to a negative power") }
                return .double(pow(x, y))
            default: break
            }
        } else {
            switch op {
            case "<", ">", "<=", ">=": return .bool(holds(op, x < y ? -1 : (x == y ? 0 : 1)))
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw ChatTemplateError.runtime("float division by zero") }
                return .double(x / y)
            case "//":
                guard y != 0 else { throw ChatTemplateError.runtime("float floor division by zero") }
                return .double((x / y).rounded(.down))
            case "%":
                guard y != 0 else { throw ChatTemplateError.runtime("float modulo by zero") }
                return .double(x - y * (x / y).rounded(.down))
            case "**": return .double(pow(x, y))
            default: break
            }
        }
        throw ChatTemplateError.unsupported("operator `\(op)`")
    }

    /// `comparison` (-1, 0, 1) against a comparison operator.
    private static func holds(_ op: String, _ comparison: Int) -> Bool {
        switch op {
        case "<": return comparison < 0
        case ">": return comparison > 0
        case "<=": return comparison <= 0
        default: return comparison >= 0
        }
    }

    /// An int, or a bool as Python counts it.
    static func integer(_ v: JinjaValue) -> Int? {
        switch v {
        case let .int(i): return i
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    /// The value of an overflow-reporting operation, or the error naming it.
    static func checked(_ result: (partialValue: Int, overflow: Bool), _ a: Int, _ op: String, _ b: Int) throws -> Int {
        if result.overflow { throw overflowError(a, op, b) }
        return result.partialValue
    }

    /// Unary form: `op` applied to `a`.
    static func checked(_ result: (partialValue: Int, overflow: Bool), _ op: String, _ a: Int) throws -> Int {
        if result.overflow {
            throw ChatTemplateError.runtime("integer overflow: \(op)\(a) does not fit in 64 bits (Python would use a big integer)")
        }
        return result.partialValue
    }

    private static func overflowError(_ a: Int, _ op: String, _ b: Int) -> ChatTemplateError {
        .runtime("integer overflow: \(a) \(op) \(b) does not fit in 64 bits (Python would use a big integer)")
    }

    /// `base ** exponent` (exponent ≥ 0) by squaring, every product checked.
    static func power(_ base: Int, _ exponent: Int) throws -> Int {
        var result = 1, factor = base, e = exponent
        while e > 0 {
            if e & 1 == 1 { result = try checked(result.multipliedReportingOverflow(by: factor), base, "**", exponent) }
            e >>= 1
            if e > 0 { factor = try checked(factor.multipliedReportingOverflow(by: factor), base, "**", exponent) }
        }
        return result
    }

    static func repeated(_ text: String, _ count: Int, _ budget: inout JinjaBudget) throws -> String {
        guard count > 0, !text.isEmpty else { return "" }
        try budget.ensure(text.utf8.count, times: count)
        return String(repeating: text, count: count)
    }

    static func repeated(_ items: [JinjaValue], _ count: Int, _ budget: inout JinjaBudget) throws -> [JinjaValue] {
        guard count > 0, !items.isEmpty else { return [] }
        try budget.ensure(items.count * JinjaBudget.bytesPerElement, times: count)
        return Array([[JinjaValue]](repeating: items, count: count).joined())
    }

    /// Python's `needle in haystack`.
    static func contains(_ haystack: JinjaValue, _ needle: JinjaValue) throws -> Bool {
        switch haystack {
        case let .string(s):
            guard case let .string(n) = needle else { throw ChatTemplateError.runtime("`in <string>` needs a string") }
            return ScalarSearch(n).firstMatch(in: Array(s.unicodeScalars)) != nil
        case let .list(items): return items.contains { $0.equals(needle) }
        case let .dict(members):
            guard case let .string(key) = needle else { return false }
            return members.contains { $0.0.unicodeScalars.elementsEqual(key.unicodeScalars) }
        case .undefined: return false
        default: throw ChatTemplateError.runtime("argument of type \(haystack.typeName) is not iterable")
        }
    }

    static func isString(_ v: JinjaValue) -> Bool { if case .string = v { return true }; return false }

    /// jinja2's `int` filter: ints and bools as they are, floats truncated, strings parsed as an
    /// integer or else as a float; what does not parse (or NaN) is 0, jinja2's default. A value
    /// beyond 64 bits, which Python would keep as a big integer, is an error.
    static func toInt(_ value: JinjaValue) throws -> Int {
        if let i = integer(value) { return i }
        func truncated(_ d: Double) throws -> Int {
            if d.isNaN { return 0 }
            guard let i = Int(exactly: d.rounded(.towardZero)) else {
                throw ChatTemplateError.runtime("`|int` of \(d) does not fit in 64 bits (Python would use a big integer)")
            }
            return i
        }
        switch value {
        case let .double(d): return try truncated(d)
        case let .string(s):
            let text = strip(s, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
            if let i = Int(text) { return i }
            let digits = text.first == "-" || text.first == "+" ? text.dropFirst() : Substring(text)
            if !digits.isEmpty && digits.allSatisfy({ ("0"..."9").contains($0) }) {  // an integer, too long
                throw ChatTemplateError.runtime("`|int` of '\(text.prefix(40))' does not fit in 64 bits (Python would use a big integer)")
            }
            if let d = Double(text) { return try truncated(d) }
            return 0
        default: return 0
        }
    }

    /// `s` with every `old` replaced by `new` (Python's `str.replace`), checked against the budget first.
    static func replace(_ s: String, _ old: String, _ new: String, budget: inout JinjaBudget) throws -> String {
        guard !old.isEmpty else { return s }
        let h = Array(s.unicodeScalars)
        let search = ScalarSearch(old)
        var starts: [Int] = []
        var from = 0
        while let m = search.firstMatch(in: h, from: from) { starts.append(m); from = m + search.count }
        guard !starts.isEmpty else { return s }
        try budget.ensure(s.utf8.count + starts.count * new.utf8.count)
        var out = String.UnicodeScalarView()
        var previous = 0
        for m in starts {
            out.append(contentsOf: h[previous..<m])
            out.append(contentsOf: new.unicodeScalars)
            previous = m + search.count
        }
        out.append(contentsOf: h[previous...])
        return String(out)
    }

    static func split(_ s: String, _ separator: String?) -> [JinjaValue] {
        let h = Array(s.unicodeScalars)
        guard let separator, !separator.isEmpty else {
            // Python str.split(): runs of whitespace, no empty strings.
            var parts: [JinjaValue] = []
            var current = String.UnicodeScalarView()
            for c in h {
                if isPythonSpace(c) { if !current.isEmpty { parts.append(.string(String(current))); current = .init() } }
                else { current.append(c) }
            }
            if !current.isEmpty { parts.append(.string(String(current))) }
            return parts
        }
        let search = ScalarSearch(separator)
        var parts: [JinjaValue] = []
        var previous = 0
        while let m = search.firstMatch(in: h, from: previous) {
            parts.append(.string(String(String.UnicodeScalarView(h[previous..<m]))))
            previous = m + search.count
        }
        parts.append(.string(String(String.UnicodeScalarView(h[previous...]))))
        return parts
    }

    static func function(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)],
                         budget: inout JinjaBudget) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw ChatTemplateError.raised(args.first?.rendered ?? "")
        case "namespace":
            var members: [String: JinjaValue] = [:]
            if case let .dict(d)? = args.first { for (k, v) in d { members[k] = v } }
            for (k, v) in kwargs { members[k] = v }
            for value in members.values { try value.checkStorable(&budget) }
            return .namespace(JinjaNamespace(members))
        case "dict":
            for (_, value) in kwargs { try value.checkStorable(&budget) }
            return .dict(kwargs)
        case "range":
            let ints = try args.map { v -> Int in
                guard let i = integer(v) else { throw ChatTemplateError.runtime("range() expects integers") }
                return i
            }
            var (start, stop, step) = (0, 0, 1)
            switch ints.count {
            case 1: stop = ints[0]
            case 2: start = ints[0]; stop = ints[1]
            case 3: start = ints[0]; stop = ints[1]; step = ints[2]
            default: throw ChatTemplateError.runtime("range() takes 1 to 3 arguments")
            }
            guard step != 0 else { throw ChatTemplateError.runtime("range() step is zero") }
            // The length in unsigned arithmetic: `stop - start` may not fit in an Int.
            var count: UInt = 0
            if step > 0 && start < stop { count = (UInt(bitPattern: stop &- start) - 1) / step.magnitude + 1 }
            if step < 0 && start > stop { count = (UInt(bitPattern: start &- stop) - 1) / step.magnitude + 1 }
            guard count <= UInt(Int.max / JinjaBudget.bytesPerElement) else {
                throw ChatTemplateError.runtime("range() of \(count) numbers is too long")
            }
            try budget.ensure(Int(count), times: JinjaBudget.bytesPerElement)
            var values: [JinjaValue] = []
            values.reserveCapacity(Int(count))
            var v = start
            for _ in 0..<Int(count) { values.append(.int(v)); v = v &+ step }  // the last wrap is unused
            return .list(values)
        case "len":
            return try filter("length", args.first ?? .undefined("len"), [], budget: &budget)
        default:
            throw ChatTemplateError.unsupported("function `\(name)()`")
        }
    }

    static func method(_ object: JinjaValue, _ name: String, _ args: [JinjaValue], budget: inout JinjaBudget) throws -> JinjaValue {
        switch object {
        case let .string(s):
            switch name {
            case "strip", "lstrip", "rstrip":
                let chars = args.first.flatMap { if case let .string(c) = $0 { return c }; return nil }
                return .string(strip(s, leading: name != "rstrip", trailing: name != "lstrip", chars: chars))
            case "lower": return .string(s.lowercased())
            case "upper": return .string(s.uppercased())
            case "title", "capitalize": return try filter(name, object, [], budget: &budget)
            case "startswith", "endswith":
                let candidates: [JinjaValue]
                if case let .list(l)? = args.first { candidates = l } else { candidates = args.prefix(1).map { $0 } }
                for c in candidates {
                    let p = Array(try string(c, name).unicodeScalars), h = Array(s.unicodeScalars)
                    if p.count <= h.count && (name == "startswith" ? Array(h.prefix(p.count)) == p : Array(h.suffix(p.count)) == p) {
                        return .bool(true)
                    }
                }
                return .bool(false)
            case "split":
                let sep = args.first.flatMap { if case let .string(c) = $0 { return c }; return nil }
                return .list(split(s, sep))
            case "replace":
                guard args.count >= 2 else { throw ChatTemplateError.runtime("replace() needs 2 arguments") }
                return .string(try replace(s, try string(args[0], "replace"), try string(args[1], "replace"), budget: &budget))
            case "format":
                throw ChatTemplateError.unsupported("str.format()")
            default: break
            }
        case let .dict(members):
            switch name {
            case "items": return .list(members.map { .list([.string($0.0), $0.1]) })
            case "keys": return .list(members.map { .string($0.0) })
            case "values": return .list(members.map { $0.1 })
            case "get":
                guard case let .string(key)? = args.first else { throw ChatTemplateError.runtime("get() needs a key") }
                return object.lookup(key: key) ?? (args.count > 1 ? args[1] : .none)
            default: break
            }
        case .undefined(let n):
            throw ChatTemplateError.runtime("`\(n)` is undefined (calling .\(name)())")
        default: break
        }
        throw ChatTemplateError.unsupported("method `.\(name)()` of \(object.typeName)")
    }

    static func filter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue], budget: inout JinjaBudget) throws -> JinjaValue {
        switch name {
        case "trim":
            return .string(strip(value.rendered, leading: true, trailing: true))
        case "length", "count":
            switch value {
            case let .string(s): return .int(s.unicodeScalars.count)
            case let .list(l): return .int(l.count)
            case let .dict(d): return .int(d.count)
            case .undefined: return .int(0)
            default: throw ChatTemplateError.runtime("object of type \(value.typeName) has no length")
            }
        case "lower": return .string(value.rendered.lowercased())
        case "upper": return .string(value.rendered.uppercased())
        case "capitalize":
            let s = value.rendered
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(value.rendered.capitalized)
        case "string": return .string(value.rendered)
        case "int": return .int(try toInt(value))
        case "abs":
            if case let .double(d) = value { return .double(Swift.abs(d)) }
            guard let i = integer(value) else { throw ChatTemplateError.runtime("bad operand for abs(): \(value.typeName)") }
            guard i != Int.min else {
                throw ChatTemplateError.runtime("integer overflow: abs(\(i)) does not fit in 64 bits (Python would use a big integer)")
            }
            return .int(Swift.abs(i))
        case "float": return .double(value.numeric ?? Double(value.rendered) ?? 0)
        case "default", "d":
            let fallback = args.first ?? .string("")
            let boolean = args.count > 1 && args[1].truthy
            if value.isUndefined || (boolean && !value.truthy) { return fallback }
            return value
        case "first":
            if case let .list(l) = value { return l.first ?? .undefined("first") }
            if case let .string(s) = value { return s.unicodeScalars.first.map { .string(String($0)) } ?? .undefined("first") }
        case "last":
            if case let .list(l) = value { return l.last ?? .undefined("last") }
            if case let .string(s) = value { return s.unicodeScalars.last.map { .string(String($0)) } ?? .undefined("last") }
        case "join":
            let separator = args.first?.rendered ?? ""
            if case let .list(l) = value {
                let parts = l.map { $0.rendered }
                try budget.ensure(parts.reduce(0) { $0 + $1.utf8.count } + separator.utf8.count * Swift.max(0, parts.count - 1))
                return .string(parts.joined(separator: separator))
            }
        case "list":
            if case .list = value { return value }
            if case let .string(s) = value { return .list(s.unicodeScalars.map { .string(String($0)) }) }
            if case let .dict(d) = value { return .list(d.map { .string($0.0) }) }
        case "reverse":
            if case let .list(l) = value { return .list(l.reversed()) }
            if case let .string(s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
        case "replace":
            guard args.count >= 2 else { throw ChatTemplateError.runtime("replace needs 2 arguments") }
            return .string(try replace(value.rendered, args[0].rendered, args[1].rendered, budget: &budget))
        case "items":
            if case let .dict(d) = value { return .list(d.map { .list([.string($0.0), $0.1]) }) }
        case "tojson":
            return .string(toJSON(value))
        case "safe", "e", "escape":
            // The sandbox does not autoescape; `safe` is the identity and we do not HTML-escape.
            if name == "safe" { return value }
        default: break
        }
        throw ChatTemplateError.unsupported("filter `|\(name)` on \(value.typeName)")
    }

    /// jinja2's `tojson` (json.dumps with sort_keys; <, >, &, ' escaped as \u003c etc.).
    static func toJSON(_ value: JinjaValue) -> String {
        switch value {
        case .undefined, .none: return "null"
        case let .bool(b): return b ? "true" : "false"
        case let .int(i): return String(i)
        case let .double(d): return JinjaValue.double(d).repr()
        case let .string(s):
            var out = "\""
            for c in s.unicodeScalars {
                switch c {
                case "\"": out += "\\\""
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                case "<": out += "\\u003c"
                case ">": out += "\\u003e"
                case "&": out += "\\u0026"
                case "'": out += "\\u0027"
                default:
                    if c.value < 0x20 || c.value > 0x7E {
                        // json.dumps ensure_ascii=True
                        var units: [UInt16] = []
                        units.append(contentsOf: String(c).utf16)
                        for u in units { out += String(format: "\\u%04x", u) }
                    } else {
                        out.unicodeScalars.append(c)
                    }
                }
            }
            return out + "\""
        case let .list(l): return "[" + l.map(toJSON).joined(separator: ", ") + "]"
        case let .dict(d):
            return "{" + d.sorted { Array($0.0.unicodeScalars.map { $0.value }).lexicographicallyPrecedes($1.0.unicodeScalars.map { $0.value }) }
                .map { toJSON(.string($0.0)) + ": " + toJSON($0.1) }.joined(separator: ", ") + "}"
        case .namespace, .function: return "null"
        }
    }

    static func test(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": if case .none = value { return true }; return false
        case "string": return isString(value)
        case "number": switch value { case .int, .double: return true; default: return false }
        case "integer": if case .int = value { return true }; return false
        case "float": if case .double = value { return true }; return false
        case "boolean": if case .bool = value { return true }; return false
        case "true": if case .bool(true) = value { return true }; return false
        case "false": if case .bool(false) = value { return true }; return false
        case "mapping": if case .dict = value { return true }; return false
        case "sequence", "iterable":
            switch value { case .list, .string, .dict: return true; default: return false }
        case "odd", "even":
            guard case let .int(i) = value else { throw ChatTemplateError.runtime("`is \(name)` needs an integer") }
            return (i % 2 != 0) == (name == "odd")
        case "divisibleby":
            guard case let .int(i) = value, case let .int(d)? = args.first, d != 0 else {
                throw ChatTemplateError.runtime("`is divisibleby` needs integers")
            }
            return d == -1 || i % d == 0  // Int.min % -1 would trap
        case "eq", "equalto", "==": return value.equals(args.first ?? .undefined(""))
        case "ne", "!=": return !value.equals(args.first ?? .undefined(""))
        case "sameas":
            let other = args.first ?? .undefined("")
            switch (value, other) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            default: return false
            }
        case "in": return try contains(args.first ?? .undefined(""), value)
        case "lower": return value.rendered == value.rendered.lowercased()
        case "upper": return value.rendered == value.rendered.uppercased()
        default: throw ChatTemplateError.unsupported("test `is \(name)`")
        }
    }
}

/// Finds a scalar sequence in linear time (Knuth-Morris-Pratt), so `in`, `replace` and `split`
/// stay O(n + m) on long messages whatever the pattern.
struct ScalarSearch {
    private let needle: [Unicode.Scalar]
    /// failure[k]: length of the longest proper border of needle[0...k].
    private let failure: [Int]

    init(_ text: String) {
        needle = Array(text.unicodeScalars)
        var failure = [Int](repeating: 0, count: needle.count)
        var k = 0
        for i in needle.indices.dropFirst() {
            while k > 0 && needle[i] != needle[k] { k = failure[k - 1] }
            if needle[i] == needle[k] { k += 1 }
            failure[i] = k
        }
        self.failure = failure
    }

    var count: Int { needle.count }

    /// Start of the first occurrence in `haystack` at or after `from`.
    func firstMatch(in haystack: [Unicode.Scalar], from: Int = 0) -> Int? {
        if needle.isEmpty { return from <= haystack.count ? from : nil }
        var k = 0
        var i = from
        while i < haystack.count {
            while k > 0 && haystack[i] != needle[k] { k = failure[k - 1] }
            if haystack[i] == needle[k] { k += 1 }
            if k == needle.count { return i - k + 1 }
            i += 1
        }
        return nil
    }
}
