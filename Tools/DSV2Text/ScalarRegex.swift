/// A small backtracking regex engine over Unicode scalars, for the `Split` patterns of
/// `tokenizer.json` (Oniguruma syntax and semantics as Hugging Face `tokenizers` uses them).
///
/// Why our own: the patterns must be matched scalar by scalar (never by grapheme, never
/// normalized: the DeepSeek letter class contains non-NFC-stable letters like U+212A), `\s` must be
/// exactly Unicode White_Space, and it has to be fast. Supported: literals and escapes, `.`,
/// classes with ranges (incl. astral), `\s \S \d \D \w \W \h \H \p{..} \P{..}`, groups `(..)`,
/// `(?:..)`, `(?i:..)`, `(?i)`, lookahead `(?=..)`/`(?!..)`, alternation, quantifiers
/// `? * + {m} {m,} {m,n}` (greedy or lazy), anchors `^ $ \A \z \Z`. Anything else is an
/// `unsupportedRegex` error naming the construct. Oniguruma's default (Ruby) syntax makes `^`/`$`
/// line anchors: `$` matches at the end or before any `\n`.
final class ScalarRegex {
    let pattern: String
    fileprivate let program: [RegexInstruction]
    /// BMP membership bitmaps of every set, 1024 words each (raw memory: no reference counting
    /// in the matching loop). The last one is the first-scalar set when there is one.
    private let bitmaps: UnsafeMutablePointer<UInt64>
    /// Per set: its description for astral scalars (nil when it has no astral member).
    private let astral: [ScalarSetItem?]
    /// Index of the set of scalars that can begin a match (-1 when the pattern can match empty).
    private let firstSet: Int

    init(_ pattern: String) throws {
        self.pattern = pattern
        var parser = RegexParser(pattern: pattern)
        let ast = try parser.parse()
        var compiler = RegexCompiler(pattern: pattern)
        try compiler.emit(ast)
        compiler.program.append(.match)
        program = compiler.program
        var items = compiler.setItems
        let (first, nullable) = RegexNode.firstScalars(ast, sets: compiler.setItems)
        if !nullable { items.append(.union(first)) }
        firstSet = nullable ? -1 : items.count - 1
        bitmaps = .allocate(capacity: items.count * 1024)
        bitmaps.initialize(repeating: 0, count: items.count * 1024)
        var astral: [ScalarSetItem?] = []
        for (k, item) in items.enumerated() {
            ScalarSet.fillBMP(item, bitmaps + k * 1024)
            astral.append(ScalarSet.provablyBMPOnly(item) ? nil : item)
        }
        self.astral = astral
    }

    deinit { bitmaps.deallocate() }

    @inline(__always)
    private func contains(_ k: Int, _ v: UInt32) -> Bool {
        if v < 0x10000 { return bitmaps[k &* 1024 &+ Int(v &>> 6)] & (1 &<< UInt64(v & 63)) != 0 }
        return astralContains(k, v)
    }

    @inline(never)
    private func astralContains(_ k: Int, _ v: UInt32) -> Bool { astral[k]?.contains(v) ?? false }

    /// All non-overlapping matches in `text[lower..<upper]` as absolute scalar offsets, in the
    /// order of Rust onig's `find_iter` (an empty match right after the previous match is skipped).
    func matches(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int,
                 into out: inout [(Int, Int)], stack: inout [RegexBacktrack]) {
        var searchFrom = lower
        var lastMatchEnd = -1
        while searchFrom <= upper {
            guard let (s, e) = search(text, lower, upper, from: searchFrom, stack: &stack) else { return }
            if s == e && lastMatchEnd == e {
                searchFrom += 1
                continue
            }
            searchFrom = e
            lastMatchEnd = e
            out.append((s, e))
        }
    }

    /// The leftmost match starting at or after `from`.
    func search(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, from: Int,
                stack: inout [RegexBacktrack]) -> (Int, Int)? {
        var start = from
        if firstSet >= 0 {
            while start < upper {
                if contains(firstSet, text[start]), let end = run(text, lower, upper, pc: 0, pos: start, stack: &stack) {
                    return (start, end)
                }
                start += 1
            }
            return nil
        }
        while start <= upper {
            if let end = run(text, lower, upper, pc: 0, pos: start, stack: &stack) { return (start, end) }
            start += 1
        }
        return nil
    }

    /// Runs the program from `pc` at `pos`; returns the end of the first (highest-priority) match.
    private func run(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, pc startPC: Int, pos startPos: Int,
                     stack: inout [RegexBacktrack]) -> Int? {
        let base = stack.count
        var pc = startPC
        var pos = startPos
        while true {
            var ok = true
            switch program[pc] {
            case let .set(k):
                if pos < upper && contains(k, text[pos]) { pos += 1; pc += 1 } else { ok = false }
            case let .repeatSet(k, minCount, maxCount, greedy):
                var n = 0
                while n < minCount && pos + n < upper && contains(k, text[pos + n]) { n += 1 }
                if n < minCount { ok = false; break }
                pos += n
                if greedy {
                    let minPos = pos
                    while (maxCount < 0 || n < maxCount) && pos < upper && contains(k, text[pos]) { pos += 1; n += 1 }
                    if pos > minPos { stack.append(RegexBacktrack(kind: .shrink, pc: pc + 1, pos: pos, aux: minPos)) }
                } else if maxCount < 0 || n < maxCount {
                    stack.append(RegexBacktrack(kind: .grow, pc: pc, pos: pos,
                                                aux: maxCount < 0 ? Int.max : pos + (maxCount - n)))
                }
                pc += 1
            case let .split(first, second):
                stack.append(RegexBacktrack(kind: .resume, pc: second, pos: pos, aux: 0))
                pc = first
            case let .jump(target):
                pc = target
            case let .assert(kind):
                switch kind {
                case .lineStart: ok = pos == lower || text[pos - 1] == 0x0A
                case .lineEnd: ok = pos == upper || text[pos] == 0x0A
                case .textStart: ok = pos == lower
                case .textEnd: ok = pos == upper
                case .textEndOrFinalNewline: ok = pos == upper || (pos == upper - 1 && text[pos] == 0x0A)
                }
                if ok { pc += 1 }
            case let .look(negative, body, next):
                // Atomic: the lookahead's own backtracking is discarded once it has decided.
                let found = run(text, lower, upper, pc: body, pos: pos, stack: &stack) != nil
                if found != negative { pc = next } else { ok = false }
            case .match:
                stack.removeSubrange(base...)
                return pos
            }
            if ok { continue }
            // Backtrack.
            while true {
                guard stack.count > base else { return nil }
                let entry = stack.removeLast()
                switch entry.kind {
                case .resume:
                    pc = entry.pc; pos = entry.pos
                case .shrink:
                    pos = entry.pos - 1
                    if pos > entry.aux { stack.append(RegexBacktrack(kind: .shrink, pc: entry.pc, pos: pos, aux: entry.aux)) }
                    pc = entry.pc
                case .grow:
                    guard case let .repeatSet(k, _, _, _) = program[entry.pc],
                          entry.pos < upper, entry.pos < entry.aux, contains(k, text[entry.pos]) else { continue }
                    pos = entry.pos + 1
                    stack.append(RegexBacktrack(kind: .grow, pc: entry.pc, pos: pos, aux: entry.aux))
                    pc = entry.pc + 1
                }
                break
            }
        }
    }
}

/// One saved choice point of the backtracking matcher.
struct RegexBacktrack {
    enum Kind: UInt8 { case resume, shrink, grow }
    var kind: Kind
    var pc: Int
    var pos: Int
    var aux: Int
}

fileprivate enum RegexAssertion { case lineStart, lineEnd, textStart, textEnd, textEndOrFinalNewline }

fileprivate enum RegexInstruction {
    case set(Int)
    /// A quantified single set: the common `[...]+` fast path (maxCount < 0 = unbounded).
    case repeatSet(Int, minCount: Int, maxCount: Int, greedy: Bool)
    case split(Int, Int)
    case jump(Int)
    case assert(RegexAssertion)
    /// Lookahead: run the body at `body` (ends in `.match`), continue at `next`.
    case look(negative: Bool, body: Int, next: Int)
    case match
}

// MARK: - Syntax tree

fileprivate indirect enum RegexNode {
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
    static func firstScalars(_ node: RegexNode, sets: [ScalarSetItem]) -> ([ScalarSetItem], Bool) {
        switch node {
        case let .set(item): return ([item], false)
        case let .sequence(items):
            var firsts: [ScalarSetItem] = []
            for item in items {
                let (f, nullable) = firstScalars(item, sets: sets)
                firsts += f
                if !nullable { return (firsts, false) }
            }
            return (firsts, true)
        case let .alternation(items):
            var firsts: [ScalarSetItem] = []
            var nullable = false
            for item in items {
                let (f, n) = firstScalars(item, sets: sets)
                firsts += f
                nullable = nullable || n
            }
            return (firsts, nullable)
        case let .repetition(inner, min, _, _):
            let (f, n) = firstScalars(inner, sets: sets)
            return (f, n || min == 0)
        case .lookahead, .assertion: return ([], true)
        }
    }
}

// MARK: - Parser

fileprivate struct RegexParser {
    let pattern: String
    let scalars: [UInt32]
    var index = 0
    var caseInsensitive = false

    init(pattern: String) {
        self.pattern = pattern
        scalars = pattern.unicodeScalars.map { $0.value }
    }

    func unsupported(_ what: String) -> TokenizerError { .unsupportedRegex(pattern: pattern, reason: what) }
    func invalid(_ what: String) -> TokenizerError { .invalidRegex(pattern: pattern, reason: what) }

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
        var items = others
        if !ranges.isEmpty { items.insert(.ranges(RegexParser.merge(ranges)), at: 0) }
        let union: ScalarSetItem = items.count == 1 ? items[0] : .union(items)
        return negated ? .not(union) : union
    }

    static func merge(_ input: [(UInt32, UInt32)]) -> ScalarRanges {
        let sorted = input.sorted { $0.0 < $1.0 }
        var out: ScalarRanges = []
        for r in sorted {
            if let last = out.last, r.0 <= last.1 &+ 1 {
                out[out.count - 1].1 = max(last.1, r.1)
            } else {
                out.append(r)
            }
        }
        return out
    }
}

// MARK: - Compiler

fileprivate struct RegexCompiler {
    let pattern: String
    var program: [RegexInstruction] = []
    var setItems: [ScalarSetItem] = []

    init(pattern: String) { self.pattern = pattern }

    mutating func addSet(_ item: ScalarSetItem) -> Int {
        setItems.append(item)
        return setItems.count - 1
    }

    mutating func emit(_ node: RegexNode) throws {
        switch node {
        case let .set(item):
            program.append(.set(addSet(item)))
        case let .sequence(items):
            for item in items { try emit(item) }
        case let .alternation(branches):
            // split L1, next; L1: a; jmp end; next: split L2, next2 ...
            var jumpsToEnd: [Int] = []
            for (i, branch) in branches.enumerated() {
                if i < branches.count - 1 {
                    let splitAt = program.count
                    program.append(.split(0, 0))
                    try emit(branch)
                    jumpsToEnd.append(program.count)
                    program.append(.jump(0))
                    program[splitAt] = .split(splitAt + 1, program.count)
                } else {
                    try emit(branch)
                }
            }
            for j in jumpsToEnd { program[j] = .jump(program.count) }
        case let .repetition(inner, minCount, maxCount, greedy):
            if case let .set(item) = inner {
                program.append(.repeatSet(addSet(item), minCount: minCount, maxCount: maxCount ?? -1, greedy: greedy))
                return
            }
            if inner.canMatchEmpty && maxCount == nil {
                throw TokenizerError.unsupportedRegex(pattern: pattern, reason: "unbounded repetition of a group that can match empty")
            }
            for _ in 0..<minCount { try emit(inner) }
            if let maxCount {
                // Each optional copy: split body, skip (greedy) or the reverse (lazy).
                var splits: [Int] = []
                for _ in minCount..<maxCount {
                    splits.append(program.count)
                    program.append(.split(0, 0))
                    try emit(inner)
                }
                for s in splits { program[s] = greedy ? .split(s + 1, program.count) : .split(program.count, s + 1) }
            } else {
                let loop = program.count
                program.append(.split(0, 0))
                try emit(inner)
                program.append(.jump(loop))
                program[loop] = greedy ? .split(loop + 1, program.count) : .split(program.count, loop + 1)
            }
        case let .lookahead(body, negative):
            let at = program.count
            program.append(.look(negative: negative, body: 0, next: 0))
            let bodyStart = program.count
            try emit(body)
            program.append(.match)
            program[at] = .look(negative: negative, body: bodyStart, next: program.count)
        case let .assertion(kind):
            program.append(.assert(kind))
        }
    }
}
