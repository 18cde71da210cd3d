import Foundation

/// A mutable attribute bag (`namespace(...)`), shared by reference like Python's.
final class JinjaNamespace {
    var members: [String: JinjaValue]
    init(_ members: [String: JinjaValue]) { self.members = members }
}

/// Python/Jinja values.
indirect enum JinjaValue {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    case dict([(String, JinjaValue)])
    case namespace(JinjaNamespace)
    /// `loop.cycle` and friends are not needed; builtin functions are resolved by name at call time.
    case function(String)

    init(json: JSONValue) {
        switch json {
        case .null: self = .none
        case let .bool(b): self = .bool(b)
        case let .number(d): self = d.rounded() == d && abs(d) < 9.0e15 ? .int(Int(d)) : .double(d)
        case let .string(s): self = .string(s)
        case let .array(a): self = .list(a.map(JinjaValue.init(json:)))
        case let .object(o): self = .dict(o.map { ($0.0, JinjaValue(json: $0.1)) })
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true }; return false }

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case let .bool(b): return b
        case let .int(i): return i != 0
        case let .double(d): return d != 0
        case let .string(s): return !s.isEmpty
        case let .list(l): return !l.isEmpty
        case let .dict(d): return !d.isEmpty
        case .namespace, .function: return true
        }
    }

    /// `str(value)` as jinja2 prints it.
    var rendered: String {
        switch self {
        case .undefined: return ""
        case let .string(s): return s
        default: return repr(top: true)
        }
    }

    func repr(top: Bool = false) -> String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case let .bool(b): return b ? "True" : "False"
        case let .int(i): return String(i)
        case let .double(d):
            if d.isNaN { return "nan" }
            if d.isInfinite { return d > 0 ? "inf" : "-inf" }
            if d.rounded() == d && abs(d) < 1e16 { return String(format: "%.1f", d) }
            return "\(d)"
        case let .string(s):
            if top { return s }
            let quote = s.contains("'") && !s.contains("\"") ? "\"" : "'"
            var out = quote
            for scalar in s.unicodeScalars {
                switch scalar {
                case "\\": out += "\\\\"
                case "\n": out += "\\n"
                case "\r": out += "\\r"
                case "\t": out += "\\t"
                default:
                    if String(scalar) == quote { out += "\\" + quote } else { out.unicodeScalars.append(scalar) }
                }
            }
            return out + quote
        case let .list(items): return "[" + items.map { $0.repr() }.joined(separator: ", ") + "]"
        case let .dict(members):
            return "{" + members.map { JinjaValue.string($0.0).repr() + ": " + $0.1.repr() }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        case let .function(name): return "<function \(name)>"
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .function: return "function"
        }
    }

    /// Python `==` (scalar-exact for strings, exact for integers; Undefined equals only Undefined).
    func equals(_ other: JinjaValue) -> Bool {
        switch (self, other) {
        case (.undefined, .undefined), (.none, .none): return true
        case let (.bool(a), .bool(b)): return a == b
        case let (.int(a), .int(b)): return a == b
        case let (.string(a), .string(b)): return a.unicodeScalars.elementsEqual(b.unicodeScalars)
        case let (.list(a), .list(b)): return a.count == b.count && zip(a, b).allSatisfy { $0.equals($1) }
        case let (.dict(a), .dict(b)):
            return a.count == b.count && a.allSatisfy { pair in b.contains { $0.0.unicodeScalars.elementsEqual(pair.0.unicodeScalars) && $0.1.equals(pair.1) } }
        case let (.namespace(a), .namespace(b)): return a === b
        default:
            if let x = numeric, let y = other.numeric { return x == y }
            return false
        }
    }

    /// Numbers (bools count, like Python).
    var numeric: Double? {
        switch self {
        case let .int(i): return Double(i)
        case let .double(d): return d
        case let .bool(b): return b ? 1 : 0
        default: return nil
        }
    }

    func lookup(key: String) -> JinjaValue? {
        switch self {
        case let .dict(members):
            for (k, v) in members where k.unicodeScalars.elementsEqual(key.unicodeScalars) { return v }
            return nil
        case let .namespace(ns): return ns.members[key]
        default: return nil
        }
    }
}

private enum LoopControl: Error { case breakLoop, continueLoop }

/// Renders a node tree. Scoping follows jinja2: `for` bodies get their own scope (a `set`
/// inside a loop does not leak out), `if` blocks do not. Every step and allocation is charged to
/// `budget`; an error is reported with the template line of the tag it happened in.
struct JinjaInterpreter {
    var output = ""
    private var scopes: [[String: JinjaValue]]
    private(set) var budget: JinjaBudget

    init(globals: [String: JinjaValue], inputBytes: Int) {
        scopes = [globals]
        budget = JinjaBudget(inputBytes: inputBytes)
    }

    mutating func run(_ nodes: [JinjaNode]) throws {
        for node in nodes { try execute(node) }
    }

    private func resolve(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        switch name {
        case "raise_exception", "namespace", "range", "dict", "strftime_now", "len":
            return .function(name)
        default: return .undefined(name)
        }
    }

    /// Runs `body`, attributing a `ChatTemplateError` that has no line yet to `line`.
    private mutating func at(_ line: Int, _ body: (inout JinjaInterpreter) throws -> Void) throws {
        do { try body(&self) } catch let error as ChatTemplateError {
            if case .located = error { throw error }
            throw ChatTemplateError.located(line: line, error)
        }
    }

    private mutating func emit(_ text: String) throws {
        try budget.charge(bytes: text.utf8.count)
        output += text
    }

    private mutating func execute(_ node: JinjaNode) throws {
        try budget.step()
        switch node {
        case let .text(t): try emit(t)
        case let .output(expr, line):
            try at(line) { try $0.emit(try $0.evaluate(expr).rendered) }
        case let .ifBlock(branches, elseBody, line):
            try at(line) { interpreter in
                for (condition, body) in branches where try interpreter.evaluate(condition).truthy {
                    try interpreter.run(body)
                    return
                }
                if let elseBody { try interpreter.run(elseBody) }
            }
        case let .forBlock(targets, iterableExpr, condition, body, elseBody, line):
            try at(line) { try $0.loop(targets, iterableExpr, condition, body, elseBody) }
        case let .set(target, attribute, valueExpr, line):
            try at(line) { interpreter in
                let value = try interpreter.evaluate(valueExpr)
                if let attribute {
                    guard case let .namespace(ns) = interpreter.resolve(target) else {
                        throw ChatTemplateError.runtime("cannot assign attribute `\(attribute)` of `\(target)` (not a namespace)")
                    }
                    try value.checkStorable(&interpreter.budget)
                    ns.members[attribute] = value
                } else {
                    interpreter.scopes[interpreter.scopes.count - 1][target] = value
                }
            }
        case .breakLoop: throw LoopControl.breakLoop
        case .continueLoop: throw LoopControl.continueLoop
        }
    }

    private mutating func loop(_ targets: [String], _ iterableExpr: JinjaExpr, _ condition: JinjaExpr?,
                               _ body: [JinjaNode], _ elseBody: [JinjaNode]?) throws {
        let iterable = try evaluate(iterableExpr)
        var items: [JinjaValue]
        switch iterable {
        case let .list(l): items = l
        case let .dict(d): items = d.map { .string($0.0) }
        case let .string(s):
            try budget.ensure(s.unicodeScalars.count, times: JinjaBudget.bytesPerElement)
            items = s.unicodeScalars.map { .string(String($0)) }
            try budget.charge(bytes: items.count * JinjaBudget.bytesPerElement)
        case .undefined, .none: items = []
        default: throw ChatTemplateError.runtime("cannot iterate over \(iterable.typeName)")
        }
        scopes.append([:])
        defer { scopes.removeLast() }
        if let condition {
            var kept: [JinjaValue] = []
            for item in items {
                try budget.step()
                try bind(targets, item)
                if try evaluate(condition).truthy { kept.append(item) }
            }
            items = kept
        }
        if items.isEmpty {
            if let elseBody { try run(elseBody) }
            return
        }
        let count = items.count
        for (i, item) in items.enumerated() {
            try budget.step()
            try bind(targets, item)
            scopes[scopes.count - 1]["loop"] = .dict([
                ("index", .int(i + 1)), ("index0", .int(i)), ("revindex", .int(count - i)),
                ("revindex0", .int(count - i - 1)), ("first", .bool(i == 0)), ("last", .bool(i == count - 1)),
                ("length", .int(count)), ("previtem", i > 0 ? items[i - 1] : .undefined("previtem")),
                ("nextitem", i + 1 < count ? items[i + 1] : .undefined("nextitem")),
            ])
            do { try run(body) } catch LoopControl.breakLoop { break } catch LoopControl.continueLoop { continue }
        }
    }

    private mutating func bind(_ targets: [String], _ item: JinjaValue) throws {
        if targets.count == 1 { scopes[scopes.count - 1][targets[0]] = item; return }
        guard case let .list(parts) = item, parts.count == targets.count else {
            throw ChatTemplateError.runtime("cannot unpack \(item.typeName) into \(targets.count) loop variables")
        }
        for (t, v) in zip(targets, parts) { scopes[scopes.count - 1][t] = v }
    }

    // MARK: Expressions

    private mutating func evaluate(_ expr: JinjaExpr) throws -> JinjaValue {
        try budget.step()
        switch expr {
        case let .literal(v): return v
        case let .name(n): return resolve(n)
        case let .list(itemExprs):
            var items: [JinjaValue] = []
            for e in itemExprs {
                let item = try evaluate(e)
                try item.checkStorable(&budget)
                items.append(item)
            }
            return try charged(.list(items))
        case let .dict(pairs):
            var members: [(String, JinjaValue)] = []
            for (k, v) in pairs {
                guard case let .string(key) = try evaluate(k) else { throw ChatTemplateError.unsupported("non-string dict key") }
                members.removeAll { $0.0.unicodeScalars.elementsEqual(key.unicodeScalars) }
                let value = try evaluate(v)
                try value.checkStorable(&budget)
                members.append((key, value))
            }
            return try charged(.dict(members))
        case let .attribute(targetExpr, name):
            let target = try evaluate(targetExpr)
            if case let .undefined(n) = target { throw ChatTemplateError.runtime("`\(n)` is undefined (reading .\(name))") }
            return target.lookup(key: name) ?? .undefined(name)
        case let .index(targetExpr, keyExpr):
            let target = try evaluate(targetExpr)
            let key = try evaluate(keyExpr)
            if case let .undefined(n) = target { throw ChatTemplateError.runtime("`\(n)` is undefined (subscripted)") }
            switch (target, key) {
            case let (.list(items), .int(i)):
                let index = i < 0 ? items.count + i : i
                return index >= 0 && index < items.count ? items[index] : .undefined("[\(i)]")
            case let (.string(s), .int(i)):
                let scalars = Array(s.unicodeScalars)
                let index = i < 0 ? scalars.count + i : i
                return index >= 0 && index < scalars.count ? .string(String(scalars[index])) : .undefined("[\(i)]")
            case let (_, .string(k)):
                return target.lookup(key: k) ?? .undefined(k)
            default:
                return .undefined("[\(key.repr())]")
            }
        case let .slice(targetExpr, startExpr, stopExpr, stepExpr):
            let target = try evaluate(targetExpr)
            func intOrNil(_ e: JinjaExpr?) throws -> Int? {
                guard let e else { return nil }
                let v = try evaluate(e)
                if case .none = v { return nil }
                guard case let .int(i) = v else { throw ChatTemplateError.runtime("slice index must be an integer") }
                return i
            }
            let start = try intOrNil(startExpr), stop = try intOrNil(stopExpr), step = try intOrNil(stepExpr) ?? 1
            guard step != 0 else { throw ChatTemplateError.runtime("slice step cannot be zero") }
            switch target {
            case let .list(items): return try charged(.list(JinjaInterpreter.slice(items, start, stop, step)))
            case let .string(s):
                let scalars = JinjaInterpreter.slice(Array(s.unicodeScalars), start, stop, step)
                return try charged(.string(String(String.UnicodeScalarView(scalars))))
            default: throw ChatTemplateError.runtime("cannot slice \(target.typeName)")
            }
        case let .call(calleeExpr, argExprs, kwargExprs):
            let args = try argExprs.map { try evaluate($0) }
            var kwargs: [(String, JinjaValue)] = []
            for (k, v) in kwargExprs { kwargs.append((k, try evaluate(v))) }
            if case let .attribute(objectExpr, method) = calleeExpr {
                let object = try evaluate(objectExpr)
                return try charged(try JinjaBuiltins.method(object, method, args, budget: &budget))
            }
            let callee = try evaluate(calleeExpr)
            guard case let .function(name) = callee else {
                throw ChatTemplateError.unsupported("calling \(callee.typeName) (only builtin functions can be called)")
            }
            return try charged(try JinjaBuiltins.function(name, args, kwargs, budget: &budget))
        case let .filter(valueExpr, name, argExprs, _):
            let value = try evaluate(valueExpr)
            let args = try argExprs.map { try evaluate($0) }
            return try charged(try JinjaBuiltins.filter(name, value, args, budget: &budget))
        case let .test(valueExpr, name, argExprs, negated):
            let value = try evaluate(valueExpr)
            let args = try argExprs.map { try evaluate($0) }
            return .bool(try JinjaBuiltins.test(name, value, args) != negated)
        case let .unary(op, operandExpr):
            let operand = try evaluate(operandExpr)
            switch op {
            case "not": return .bool(!operand.truthy)
            case "-":
                if case let .int(i) = operand { return .int(try JinjaBuiltins.checked(0.subtractingReportingOverflow(i), "-", i)) }
                if case let .bool(b) = operand { return .int(b ? -1 : 0) }
                if case let .double(d) = operand { return .double(-d) }
                throw ChatTemplateError.runtime("bad operand for unary -: \(operand.typeName)")
            default: return operand
            }
        case let .binary(op, leftExpr, rightExpr):
            if op == "and" {
                let left = try evaluate(leftExpr)
                return left.truthy ? try evaluate(rightExpr) : left
            }
            if op == "or" {
                let left = try evaluate(leftExpr)
                return left.truthy ? left : try evaluate(rightExpr)
            }
            return try charged(try JinjaBuiltins.binary(op, try evaluate(leftExpr), try evaluate(rightExpr), budget: &budget))
        case let .conditional(body, condition, other):
            if try evaluate(condition).truthy { return try evaluate(body) }
            if let other { return try evaluate(other) }
            return .undefined("(conditional)")
        }
    }

    /// Charges the bytes of a value just built.
    private mutating func charged(_ value: JinjaValue) throws -> JinjaValue {
        try budget.charge(bytes: value.chargedBytes)
        return value
    }

    /// Python's `items[start:stop:step]` (step not zero); any step, however large, is safe.
    static func slice<T>(_ items: [T], _ start: Int?, _ stop: Int?, _ step: Int) -> [T] {
        let n = items.count
        guard step != 0 else { return [] }
        func clamp(_ v: Int?, _ dflt: Int, lowBound: Int, highBound: Int) -> Int {
            guard var v else { return dflt }
            if v < 0 { v += n }
            return min(max(v, lowBound), highBound)
        }
        var out: [T] = []
        if step > 0 {
            var i = clamp(start, 0, lowBound: 0, highBound: n)
            let end = clamp(stop, n, lowBound: 0, highBound: n)
            while i < end {
                out.append(items[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        } else {
            var i = clamp(start, n - 1, lowBound: -1, highBound: n - 1)
            let end = clamp(stop, -1, lowBound: -1, highBound: n - 1)
            while i > end {
                out.append(items[i])
                let (next, overflow) = i.addingReportingOverflow(step)
                if overflow { break }
                i = next
            }
        }
        return out
    }
}
