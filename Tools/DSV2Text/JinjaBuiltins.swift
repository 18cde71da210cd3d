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

    static func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        if a.isUndefined || b.isUndefined, !["==", "!=", "~", "in", "notin"].contains(op) {
            let name: String
            if case let .undefined(n) = a { name = n } else if case let .undefined(n) = b { name = n } else { name = "?" }
            throw ChatTemplateError.runtime("`\(name)` is undefined (operand of `\(op)`)")
        }
        switch op {
        case "==": return .bool(a.equals(b))
        case "!=": return .bool(!a.equals(b))
        case "~": return .string(a.rendered + b.rendered)
        case "in", "notin":
            let found: Bool
            switch b {
            case let .string(s):
                guard case let .string(needle) = a else { throw ChatTemplateError.runtime("`in <string>` needs a string") }
                found = needle.isEmpty || s.unicodeScalars.count >= needle.unicodeScalars.count
                    && containsScalars(s, needle)
            case let .list(items): found = items.contains { $0.equals(a) }
            case let .dict(members):
                guard case let .string(key) = a else { found = false; break }
                found = members.contains { $0.0.unicodeScalars.elementsEqual(key.unicodeScalars) }
            case .undefined: found = false
            default: throw ChatTemplateError.runtime("argument of type \(b.typeName) is not iterable")
            }
            return .bool(op == "in" ? found : !found)
        case "+":
            switch (a, b) {
            case let (.string(x), .string(y)): return .string(x + y)
            case let (.list(x), .list(y)): return .list(x + y)
            case let (.int(x), .int(y)): return .int(x &+ y)
            default:
                if let x = a.numeric, let y = b.numeric, !(isString(a) || isString(b)) { return .double(x + y) }
                throw ChatTemplateError.runtime("unsupported operands for +: \(a.typeName) and \(b.typeName)")
            }
        case "-", "*", "/", "//", "%", "**", "<", ">", "<=", ">=":
            if op == "*", case let .string(s) = a, case let .int(n) = b { return .string(String(repeating: s, count: max(0, n))) }
            if op == "*", case let .list(l) = a, case let .int(n) = b { return .list(Array(repeating: l, count: max(0, n)).flatMap { $0 }) }
            if ["<", ">", "<=", ">="].contains(op), case let .string(x) = a, case let .string(y) = b {
                let xs = Array(x.unicodeScalars.map { $0.value }), ys = Array(y.unicodeScalars.map { $0.value })
                let less = xs.lexicographicallyPrecedes(ys), equal = xs == ys
                switch op {
                case "<": return .bool(less)
                case ">": return .bool(!less && !equal)
                case "<=": return .bool(less || equal)
                default: return .bool(!less)
                }
            }
            guard let x = a.numeric, let y = b.numeric, !isString(a), !isString(b) else {
                throw ChatTemplateError.runtime("unsupported operands for \(op): \(a.typeName) and \(b.typeName)")
            }
            let bothInt = isInt(a) && isInt(b)
            switch op {
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            case "-": return bothInt ? .int(Int(x) - Int(y)) : .double(x - y)
            case "*": return bothInt ? .int(Int(x) * Int(y)) : .double(x * y)
            case "/":
                guard y != 0 else { throw ChatTemplateError.runtime("division by zero") }
                return .double(x / y)
            case "//":
                guard y != 0 else { throw ChatTemplateError.runtime("division by zero") }
                return bothInt ? .int(Int((x / y).rounded(.down))) : .double((x / y).rounded(.down))
            case "%":
                guard y != 0 else { throw ChatTemplateError.runtime("modulo by zero") }
                if bothInt { let m = Int(x) % Int(y); return .int(m != 0 && (m < 0) != (y < 0) ? m + Int(y) : m) }
                return .double(x - y * (x / y).rounded(.down))
            default: return bothInt && y >= 0 ? .int(Int(pow(x, y))) : .double(pow(x, y))
            }
        default:
            throw ChatTemplateError.unsupported("operator `\(op)`")
        }
    }

    static func isString(_ v: JinjaValue) -> Bool { if case .string = v { return true }; return false }
    static func isInt(_ v: JinjaValue) -> Bool {
        switch v { case .int, .bool: return true; default: return false }
    }

    static func containsScalars(_ haystack: String, _ needle: String) -> Bool {
        let h = Array(haystack.unicodeScalars), n = Array(needle.unicodeScalars)
        guard n.count <= h.count else { return false }
        if n.isEmpty { return true }
        for i in 0...(h.count - n.count) where h[i] == n[0] && Array(h[i..<(i + n.count)]) == n { return true }
        return false
    }

    static func replace(_ s: String, _ old: String, _ new: String) -> String {
        let h = Array(s.unicodeScalars), o = Array(old.unicodeScalars)
        var out = String.UnicodeScalarView()
        if o.isEmpty { return s }
        var i = 0
        while i < h.count {
            if i + o.count <= h.count && Array(h[i..<(i + o.count)]) == o {
                out.append(contentsOf: new.unicodeScalars); i += o.count
            } else {
                out.append(h[i]); i += 1
            }
        }
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
        let o = Array(separator.unicodeScalars)
        var parts: [JinjaValue] = []
        var current = String.UnicodeScalarView()
        var i = 0
        while i < h.count {
            if i + o.count <= h.count && Array(h[i..<(i + o.count)]) == o {
                parts.append(.string(String(current))); current = .init(); i += o.count
            } else {
                current.append(h[i]); i += 1
            }
        }
        parts.append(.string(String(current)))
        return parts
    }

    static func function(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw ChatTemplateError.raised(args.first?.rendered ?? "")
        case "namespace":
            var members: [String: JinjaValue] = [:]
            if case let .dict(d)? = args.first { for (k, v) in d { members[k] = v } }
            for (k, v) in kwargs { members[k] = v }
            return .namespace(JinjaNamespace(members))
        case "dict":
            return .dict(kwargs)
        case "range":
            let ints = try args.map { v -> Int in
                guard case let .int(i) = v else { throw ChatTemplateError.runtime("range() expects integers") }
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
            guard abs((stop - start) / step) <= 100_000 else { throw ChatTemplateError.runtime("range() too long") }
            return .list(Swift.stride(from: start, to: stop, by: step).map { .int($0) })
        case "len":
            return try filter("length", args.first ?? .undefined("len"), [])
        default:
            throw ChatTemplateError.unsupported("function `\(name)()`")
        }
    }

    static func method(_ object: JinjaValue, _ name: String, _ args: [JinjaValue]) throws -> JinjaValue {
        switch object {
        case let .string(s):
            switch name {
            case "strip", "lstrip", "rstrip":
                let chars = args.first.flatMap { if case let .string(c) = $0 { return c }; return nil }
                return .string(strip(s, leading: name != "rstrip", trailing: name != "lstrip", chars: chars))
            case "lower": return .string(s.lowercased())
            case "upper": return .string(s.uppercased())
            case "title", "capitalize": return try filter(name, object, [])
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
                return .string(replace(s, try string(args[0], "replace"), try string(args[1], "replace")))
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

    static func filter(_ name: String, _ value: JinjaValue, _ args: [JinjaValue]) throws -> JinjaValue {
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
        case "int":
            if case let .string(s) = value { return .int(Int(strip(s, leading: true, trailing: true)) ?? 0) }
            return .int(Int(value.numeric ?? 0))
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
            if case let .list(l) = value { return .string(l.map { $0.rendered }.joined(separator: separator)) }
        case "list":
            if case .list = value { return value }
            if case let .string(s) = value { return .list(s.unicodeScalars.map { .string(String($0)) }) }
            if case let .dict(d) = value { return .list(d.map { .string($0.0) }) }
        case "reverse":
            if case let .list(l) = value { return .list(l.reversed()) }
            if case let .string(s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
        case "replace":
            guard args.count >= 2 else { throw ChatTemplateError.runtime("replace needs 2 arguments") }
            return .string(replace(value.rendered, args[0].rendered, args[1].rendered))
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
            return i % d == 0
        case "eq", "equalto", "==": return value.equals(args.first ?? .undefined(""))
        case "ne", "!=": return !value.equals(args.first ?? .undefined(""))
        case "sameas":
            let other = args.first ?? .undefined("")
            switch (value, other) {
            case (.none, .none): return true
            case let (.bool(a), .bool(b)): return a == b
            default: return false
            }
        case "in": return try binary("in", value, args.first ?? .undefined("")).truthy
        case "lower": return value.rendered == value.rendered.lowercased()
        case "upper": return value.rendered == value.rendered.uppercased()
        default: throw ChatTemplateError.unsupported("test `is \(name)`")
        }
    }
}
