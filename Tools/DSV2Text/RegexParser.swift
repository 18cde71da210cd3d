/// Syntax tree and parser of the Split regexes (Oniguruma syntax, see `ScalarRegex`).
///
/// Nesting is bounded at parse time (`RegexParser.maxNesting` groups and classes, and at most
/// `maxStackedQuantifiers` quantifiers on one atom) so that every recursive pass over the tree
/// (this parser, the compiler, `firstScalars`) stays far from the end of a thread's stack.

// MARK: - Syntax tree

indirect enum RegexNode {
    case set(ScalarSetItem)
    case sequence([RegexNode])
    case alternation([RegexNode])
    case repetition(RegexNode, min: Int, max: Int?, greedy: Bool)
    case lookahead(RegexNode, negative: Bool)
    case assertion(RegexAssertion)

    var canMatchEmpty: Bool {
        switch self {
        case .set: return false
        case let .sequence(items): return items.allSatisfy { $0.canMatchEmpty }
        case let .alternation(items): return items.contains { $0.canMatchEmpty }
        case let .repetition(node, min, _, _): return min == 0 || node.canMatchEmpty
        case .lookahead, .assertion: return true
        }
    }

    /// The scalars that can start a match and whether the node can match without consuming any.
    static func firstScalars(_ node: RegexNode) -> ([ScalarSetItem], Bool) {
        switch node {
        case let .set(item): return ([item], false)
        case let .sequence(items):
            var firsts: [ScalarSetItem] = []
            for item in items {
                let (f, nullable) = firstScalars(item)
                firsts += f
                if !nullable { return (firsts, false) }
            }
            return (firsts, true)
        case let .alternation(items):
            var firsts: [ScalarSetItem] = []
            var nullable = false
            for item in items {
                let (f, n) = firstScalars(item)
                firsts += f
                nullable = nullable || n
            }
            return (firsts, nullable)
        case let .repetition(inner, min, _, _):
            let (f, n) = firstScalars(inner)
            return (f, n || min == 0)
        case .lookahead, .assertion: return ([], true)
        }
    }
}

// MARK: - Parser

struct RegexParser {
    /// Groups and classes nested deeper than this are an error (real patterns nest 1-3 deep;
    /// Oniguruma's own limit is 4096, which recursion on a 512 KiB thread stack would not survive).
    static let maxNesting = 128
    /// `a{2}{3}` is legal; more than this many quantifiers on one atom is an error.
    static let maxStackedQuantifiers = 4

    let pattern: String
    let scalars: [UInt32]
    var index = 0
    var caseInsensitive = false
    /// Groups and classes open at `index`.
    var depth = 0

    init(pattern: String) {
        self.pattern = pattern
        scalars = pattern.unicodeScalars.map { $0.value }
    }

    func unsupported(_ what: String) -> TokenizerError { .unsupportedRegex(pattern: ScalarRegex.shorten(pattern), reason: what) }

    /// Enters a group or class; throws past `maxNesting`.
    mutating func enter() throws {
        depth += 1
        if depth > RegexParser.maxNesting {
            throw unsupported("groups or classes nested more than \(RegexParser.maxNesting) deep (at scalar \(index))")
        }
    }
    func invalid(_ what: String) -> TokenizerError { .invalidRegex(pattern: ScalarRegex.shorten(pattern), reason: what) }

    var atEnd: Bool { index >= scalars.count }
    func peek(_ offset: Int = 0) -> UInt32? { index + offset < scalars.count ? scalars[index + offset] : nil }

    mutating func parse() throws -> RegexNode {
        let node = try parseAlternation()
        if !atEnd { throw invalid("unbalanced `)` at scalar \(index)") }
        return node
    }

    mutating func parseAlternation() throws -> RegexNode {
        let savedFlag = caseInsensitive
        defer { caseInsensitive = savedFlag }  // `(?i)` lasts to the end of the enclosing group
        var branches = [try parseSequence()]
        while peek() == 0x7C {  // |
            index += 1
            branches.append(try parseSequence())
        }
        return branches.count == 1 ? branches[0] : .alternation(branches)
    }

    mutating func parseSequence() throws -> RegexNode {
        var items: [RegexNode] = []
        while let c = peek(), c != 0x7C, c != 0x29 {  // | )
            if let atom = try parseAtom() {
                items.append(try parseQuantifiers(atom))
            }
        }
        return items.count == 1 ? items[0] : .sequence(items)
    }

    mutating func parseQuantifiers(_ atom: RegexNode) throws -> RegexNode {
        var node = atom
        var stacked = 0
        while let c = peek() {
            var minCount = 0, maxCount: Int? = nil
            switch c {
            case 0x3F: minCount = 0; maxCount = 1; index += 1            // ?
            case 0x2A: minCount = 0; maxCount = nil; index += 1          // *
            case 0x2B: minCount = 1; maxCount = nil; index += 1          // +
            case 0x7B:                                                   // {
                guard let (lo, hi, length) = parseInterval() else { return node }  // literal `{`
                minCount = lo; maxCount = hi; index += length
            default: return node
            }
            if case .assertion = node { throw unsupported("quantified anchor") }
            if case .lookahead = node { throw unsupported("quantified lookahead") }
            var greedy = true
            if peek() == 0x3F { greedy = false; index += 1 }
            else if peek() == 0x2B { throw unsupported("possessive quantifier `+` at scalar \(index)") }
            if let maxCount, maxCount < minCount { throw invalid("interval {\(minCount),\(maxCount)}") }
            if minCount > 1000 || (maxCount ?? 0) > 1000 { throw unsupported("interval bound above 1000") }
            stacked += 1
            if stacked > RegexParser.maxStackedQuantifiers {
                throw unsupported("more than \(RegexParser.maxStackedQuantifiers) quantifiers on one atom (at scalar \(index))")
            }
            node = .repetition(node, min: minCount, max: maxCount, greedy: greedy)
        }
        return node
    }

    /// `{m}`, `{m,}`, `{m,n}`, `{,n}` starting at `index`; nil when it is not an interval.
    func parseInterval() -> (Int, Int?, Int)? {
        var i = index + 1
        func number() -> Int? {
            var value: Int? = nil
            while i < scalars.count, scalars[i] >= 0x30, scalars[i] <= 0x39 {
                value = (value ?? 0) * 10 + Int(scalars[i] - 0x30)
                if value! > 100_000 { return nil }
                i += 1
            }
            return value
        }
        let lo = number()
        if i < scalars.count, scalars[i] == 0x7D {
            guard let lo else { return nil }
            return (lo, lo, i + 1 - index)
        }
        guard i < scalars.count, scalars[i] == 0x2C else { return nil }
        i += 1
        let hi = number()
        guard i < scalars.count, scalars[i] == 0x7D, lo != nil || hi != nil else { return nil }
        return (lo ?? 0, hi, i + 1 - index)
    }

    mutating func parseAtom() throws -> RegexNode? {
        let c = scalars[index]
        index += 1
        switch c {
        case 0x28: return try parseGroup()                                   // (
        case 0x5B: return .set(try parseClass())                             // [
        case 0x2E: return .set(.not(.ranges([(0x0A, 0x0A)])))               // . (not newline)
        case 0x5E: return .assertion(.lineStart)                             // ^
        case 0x24: return .assertion(.lineEnd)                               // $
        case 0x5C: return try parseEscape(inClass: false).node              // \
        case 0x2A, 0x2B, 0x3F: throw invalid("nothing to repeat at scalar \(index - 1)")
        default: return .set(literal(c))
        }
    }

    mutating func parseGroup() throws -> RegexNode? {
        try enter()
        defer { depth -= 1 }
        if peek() == 0x3F {  // (?
            index += 1
            guard let kind = peek() else { throw invalid("unterminated group") }
            switch kind {
            case 0x3A:  // (?:
                index += 1
                return try finishGroup()
            case 0x3D, 0x21:  // (?= (?!
                index += 1
                let body = try finishGroup()
                return .lookahead(body, negative: kind == 0x21)
            case 0x3C:  // (?<
                if peek(1) == 0x3D || peek(1) == 0x21 { throw unsupported("lookbehind `(?<\(peek(1) == 0x3D ? "=" : "!")`") }
                index += 1
                while let n = peek(), n != 0x3E { index += 1 }  // named group: skip the name
                guard peek() == 0x3E else { throw invalid("unterminated group name") }
                index += 1
                return try finishGroup()
            case 0x3E: throw unsupported("atomic group `(?>`")
            case 0x23: throw unsupported("comment group `(?#`")
            default:
                // Flags: (?i) (?i:..) (?-i) (?-i:..)
                var on = true
                var newFlag = caseInsensitive
                while let f = peek(), f != 0x3A, f != 0x29 {
                    switch f {
                    case 0x2D: on = false
                    case 0x69: newFlag = on
                    default:
                        throw unsupported("group flag `\(String(Unicode.Scalar(f).map { Character($0) } ?? "?"))`")
                    }
                    index += 1
                }
                guard let end = peek() else { throw invalid("unterminated group") }
                index += 1
                if end == 0x29 {  // (?i) applies to the rest of the enclosing group
                    caseInsensitive = newFlag
                    return nil
                }
                let saved = caseInsensitive
                caseInsensitive = newFlag
                defer { caseInsensitive = saved }
                return try finishGroup()
            }
        }
        return try finishGroup()
    }

    mutating func finishGroup() throws -> RegexNode {
        let body = try parseAlternation()
        guard peek() == 0x29 else { throw invalid("missing `)`") }
        index += 1
        return body
    }

    /// A literal scalar, expanded to its case variants under `(?i)`.
    func literal(_ c: UInt32) -> ScalarSetItem {
        guard caseInsensitive else { return .ranges([(c, c)]) }
        return .ranges(RegexParser.caseVariants(of: c).map { ($0, $0) })
    }

    /// Scalars that Unicode simple case folding maps to the same scalar as `c` (what Oniguruma's
    /// `(?i)` matches), from Swift's single-scalar case mappings plus the folds that need it.
    static func caseVariants(of c: UInt32) -> [UInt32] {
        var result: Set<UInt32> = [c]
        guard let scalar = Unicode.Scalar(c) else { return [c] }
        for mapping in [scalar.properties.lowercaseMapping, scalar.properties.uppercaseMapping,
                        scalar.properties.titlecaseMapping] {
            let s = Array(mapping.unicodeScalars)
            if s.count == 1 { result.insert(s[0].value) }
        }
        // Scalars outside ASCII whose simple case fold is an ASCII letter.
        switch c {
        case 0x73, 0x53: result.insert(0x017F)          // s S -> also LATIN SMALL LETTER LONG S
        case 0x6B, 0x4B: result.insert(0x212A)          // k K -> also KELVIN SIGN
        case 0x017F: result.formUnion([0x73, 0x53])
        case 0x212A: result.formUnion([0x6B, 0x4B])
        case 0xE5, 0xC5: result.insert(0x212B)          // å Å -> also ANGSTROM SIGN
        case 0x212B: result.formUnion([0xE5, 0xC5])
        default: break
        }
        return result.sorted()
    }

    /// After a backslash. In a class only scalars and set escapes are allowed.
    mutating func parseEscape(inClass: Bool) throws -> (node: RegexNode?, item: ScalarSetItem?, scalar: UInt32?) {
        guard let c = peek() else { throw invalid("trailing backslash") }
        index += 1
        func item(_ i: ScalarSetItem) -> (RegexNode?, ScalarSetItem?, UInt32?) { (.set(i), i, nil) }
        func scalar(_ v: UInt32) -> (RegexNode?, ScalarSetItem?, UInt32?) { (.set(literal(v)), nil, v) }
        switch c {
        case 0x73: return item(.whiteSpace)                                      // \s
        case 0x53: return item(.not(.whiteSpace))                                // \S
        case 0x64: return item(.categories(ScalarSetItem.bit(.decimalNumber)))   // \d
        case 0x44: return item(.not(.categories(ScalarSetItem.bit(.decimalNumber))))
        case 0x77: return item(.word)                                            // \w
        case 0x57: return item(.not(.word))
        case 0x68: return item(.ranges([(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)]))  // \h hex digit
        case 0x48: return item(.not(.ranges([(0x30, 0x39), (0x41, 0x46), (0x61, 0x66)])))
        case 0x70, 0x50:                                                         // \p{..} \P{..}
            guard peek() == 0x7B else { throw unsupported("`\\p` without braces") }
            index += 1
            var name = ""
            var negate = c == 0x50
            if peek() == 0x5E { negate.toggle(); index += 1 }
            while let n = peek(), n != 0x7D { name.unicodeScalars.append(Unicode.Scalar(n)!); index += 1 }
            guard peek() == 0x7D else { throw invalid("unterminated \\p{") }
            index += 1
            guard let mask = ScalarSetItem.categoryMask(named: name) else {
                throw unsupported("Unicode property \\p{\(name)} (only general categories are implemented)")
            }
            return item(negate ? .not(.categories(mask)) : .categories(mask))
        case 0x6E: return scalar(0x0A)
        case 0x72: return scalar(0x0D)
        case 0x74: return scalar(0x09)
        case 0x66: return scalar(0x0C)
        case 0x76: return scalar(0x0B)
        case 0x61: return scalar(0x07)
        case 0x65: return scalar(0x1B)
        case 0x30: return scalar(0)
        case 0x78:                                                               // \xHH \x{H..}
            if peek() == 0x7B {
                index += 1
                let v = try hexDigits(max: 8, terminator: 0x7D)
                return scalar(v)
            }
            return scalar(try hexDigits(max: 2, terminator: nil))
        case 0x75: return scalar(try hexDigits(max: 4, terminator: nil, exact: true))  // \uHHHH
        case 0x41 where !inClass: return (.assertion(.textStart), nil, nil)           // \A
        case 0x7A where !inClass: return (.assertion(.textEnd), nil, nil)             // \z
        case 0x5A where !inClass: return (.assertion(.textEndOrFinalNewline), nil, nil)  // \Z
        case 0x62, 0x42, 0x47, 0x4B, 0x52, 0x58, 0x4E, 0x4F, 0x79, 0x59, 0x6B, 0x67:
            if inClass && c == 0x62 { return scalar(0x08) }
            throw unsupported("escape `\\\(String(Unicode.Scalar(c)!))`")
        case 0x31...0x39: throw unsupported("backreference `\\\(String(Unicode.Scalar(c)!))`")
        default:
            if (0x41...0x5A).contains(c) || (0x61...0x7A).contains(c) {
                throw unsupported("escape `\\\(String(Unicode.Scalar(c)!))`")
            }
            return scalar(c)  // escaped punctuation or any other scalar stands for itself
        }
    }

    mutating func hexDigits(max: Int, terminator: UInt32?, exact: Bool = false) throws -> UInt32 {
        var value: UInt32 = 0
        var count = 0
        while count < max, let h = peek(), let d = RegexParser.hexValue(h) {
            value = value * 16 + d; count += 1; index += 1
        }
        if count == 0 || (exact && count != max) { throw invalid("bad hexadecimal escape") }
        if let terminator {
            guard peek() == terminator else { throw invalid("bad hexadecimal escape") }
            index += 1
        }
        guard value <= 0x10FFFF else { throw invalid("code point out of range") }
        return value
    }

    static func hexValue(_ h: UInt32) -> UInt32? {
        switch h {
        case 0x30...0x39: return h - 0x30
        case 0x41...0x46: return h - 0x41 + 10
        case 0x61...0x66: return h - 0x61 + 10
        default: return nil
        }
    }

    /// After `[`: a class with ranges, escapes, negation and nested classes.
    mutating func parseClass() throws -> ScalarSetItem {
        try enter()
        defer { depth -= 1 }
        var negated = false
        if peek() == 0x5E { negated = true; index += 1 }
        var ranges: [(UInt32, UInt32)] = []
        var others: [ScalarSetItem] = []
        var first = true
        while true {
            guard let c = peek() else { throw invalid("unterminated character class") }
            if c == 0x5D && !first { index += 1; break }  // ] (a leading ] is literal)
            first = false
            if c == 0x5B {  // nested class or POSIX bracket
                if peek(1) == 0x3A { throw unsupported("POSIX bracket `[:name:]`") }
                index += 1
                others.append(try parseClass())
                continue
            }
            if c == 0x26 && peek(1) == 0x26 { throw unsupported("class intersection `&&`") }
            let low: UInt32
            index += 1
            if c == 0x5C {
                let escape = try parseEscape(inClass: true)
                if let item = escape.item { others.append(item); continue }
                guard let v = escape.scalar else { throw unsupported("anchor in class") }
                low = v
            } else {
                low = c
            }
            // A range `a-b` (a `-` before `]` is literal).
            if peek() == 0x2D, let next = peek(1), next != 0x5D {
                index += 1
                var high: UInt32
                if next == 0x5C {
                    index += 1
                    let escape = try parseEscape(inClass: true)
                    guard let v = escape.scalar else { throw invalid("class range ends in a set escape") }
                    high = v
                } else if next == 0x5B {
                    throw invalid("class range ends in a nested class")
                } else {
                    high = next
                    index += 1
                }
                guard low <= high else { throw invalid("empty class range") }
                if caseInsensitive {
                    if high - low > 0x2000 { throw unsupported("large case-insensitive class range") }
                    for v in low...high { for x in RegexParser.caseVariants(of: v) { ranges.append((x, x)) } }
                } else {
                    ranges.append((low, high))
                }
                continue
            }
            if caseInsensitive {
                for x in RegexParser.caseVariants(of: low) { ranges.append((x, x)) }
            } else {
                ranges.append((low, low))
            }
        }
        let union = ScalarSetItem.normalizedUnion([.ranges(ranges)] + others)
        return negated ? .not(union) : union
    }
}
