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
///
/// Time: the plain backtracker (fast on every real pattern) counts its steps; once one `matches`
/// call has spent more than `fastStepsPerState` steps per (instruction, position) state of its
/// range, the rest of the call runs on the memoizing matcher (`ScalarRegex+Memo.swift`), which
/// visits each state at most once. So `(a+)+$` or `\s+$` over a long run of spaces stay linear in
/// the text instead of exponential or quadratic, with the same matches.
final class ScalarRegex {
    /// Instructions per program, past which a pattern is an error (20k alternatives take ~60k).
    static let maxProgramLength = 1 << 18
    /// Distinct classes that get a 8 KiB BMP bitmap; the others are matched from their description.
    static let maxBitmapSets = 1024
    /// Fast-matcher steps allowed per state of the memo program before switching to it.
    static let fastStepsPerState = 4

    let pattern: String
    /// With fused set repetitions (`repeatSet`): what the fast matcher runs.
    let program: [RegexInstruction]
    /// Every repetition as split/jump loops, so that (pc, pos) is the whole state: what the
    /// memoizing matcher runs.
    let memoProgram: [RegexInstruction]
    /// BMP membership bitmaps of the first `bitmapCount` sets, 1024 words each (raw memory: no
    /// reference counting in the matching loop). The last one is the first-scalar set when there is one.
    private let bitmaps: UnsafeMutablePointer<UInt64>
    /// Per bitmap set: its description for astral scalars (nil when it has no astral member).
    private let astral: [ScalarSetItem?]
    /// Every distinct set; those past the bitmaps are matched with `ScalarSetItem.contains`.
    let sets: [ScalarSetItem]
    /// Index of the bitmap of scalars that can begin a match (-1 when the pattern can match empty).
    let firstSet: Int
    /// Fast-matcher steps allowed per scalar of a `matches` range.
    private let fastStepsPerScalar: Int

    init(_ pattern: String) throws {
        self.pattern = pattern
        var parser = RegexParser(pattern: pattern)
        let ast = try parser.parse()
        var compiler = RegexCompiler(pattern: pattern)
        program = try compiler.compile(ast, fuseSetRepetitions: true)
        memoProgram = try compiler.compile(ast, fuseSetRepetitions: false)
        sets = compiler.sets
        var bitmapItems = Array(sets.prefix(compiler.bitmapCount))
        let (first, nullable) = RegexNode.firstScalars(ast)
        if !nullable { bitmapItems.append(.normalizedUnion(first)) }
        firstSet = nullable ? -1 : bitmapItems.count - 1
        bitmaps = .allocate(capacity: bitmapItems.count * 1024)
        bitmaps.initialize(repeating: 0, count: bitmapItems.count * 1024)
        var astral: [ScalarSetItem?] = []
        for (k, item) in bitmapItems.enumerated() {
            ScalarSet.fillBMP(item, bitmaps + k * 1024)
            astral.append(ScalarSet.provablyBMPOnly(item) ? nil : item)
        }
        self.astral = astral
        fastStepsPerScalar = ScalarRegex.fastStepsPerState * memoProgram.count
    }

    deinit { bitmaps.deallocate() }

    /// The pattern for messages, cut to its first 100 scalars.
    var shortPattern: String { ScalarRegex.shorten(pattern) }

    static func shorten(_ pattern: String) -> String {
        let scalars = pattern.unicodeScalars
        guard scalars.count > 100 else { return pattern }
        return String(String.UnicodeScalarView(scalars.prefix(100))) + "… (\(scalars.count) scalars)"
    }

    @inline(__always)
    func contains(_ k: Int, _ v: UInt32) -> Bool {
        if v < 0x10000 { return bitmaps[k &* 1024 &+ Int(v &>> 6)] & (1 &<< UInt64(v & 63)) != 0 }
        return astralContains(k, v)
    }

    @inline(never)
    private func astralContains(_ k: Int, _ v: UInt32) -> Bool { astral[k]?.contains(v) ?? false }

    /// All non-overlapping matches in `text[lower..<upper]` as absolute scalar offsets, in the
    /// order of Rust onig's `find_iter` (an empty match right after the previous match is skipped).
    /// If even the memoizing matcher runs out of steps, the matches found so far are kept and
    /// `scratch.failure` is set (the caller reports it).
    @inline(__always)
    func matches(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int,
                 into out: inout [(Int, Int)], scratch: inout RegexScratch) {
        var searchFrom = lower
        var lastMatchEnd = -1
        scratch.steps = 0
        scratch.stepLimit = (upper - lower + 1) &* fastStepsPerScalar &+ 4096
        while searchFrom <= upper {
            guard let (s, e) = search(text, lower, upper, from: searchFrom, scratch: &scratch) else { return }
            if s == RegexScratch.overBudget {
                return memoMatches(text, lower, upper, from: searchFrom, lastMatchEnd: lastMatchEnd,
                                   into: &out, scratch: &scratch)
            }
            if s == e && lastMatchEnd == e {
                searchFrom += 1
                continue
            }
            searchFrom = e
            lastMatchEnd = e
            out.append((s, e))
        }
    }

    /// The leftmost match starting at or after `from`, nil when there is none, or
    /// `(RegexScratch.overBudget, _)` when the step limit was reached.
    private func search(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, from: Int,
                        scratch: inout RegexScratch) -> (Int, Int)? {
        var start = from
        if firstSet >= 0 {
            while start < upper {
                if contains(firstSet, text[start]) {
                    let end = run(text, lower, upper, pc: 0, pos: start, scratch: &scratch)
                    if end >= 0 { return (start, end) }
                    if end == RegexScratch.overBudget { return (end, 0) }
                }
                start += 1
            }
            return nil
        }
        while start <= upper {
            let end = run(text, lower, upper, pc: 0, pos: start, scratch: &scratch)
            if end >= 0 { return (start, end) }
            if end == RegexScratch.overBudget { return (end, 0) }
            start += 1
        }
        return nil
    }

    /// Runs the program from `pc` at `pos`; returns the end of the first (highest-priority) match,
    /// `RegexScratch.noMatch` or `RegexScratch.overBudget`. Steps counted are runs and backtracks:
    /// between two of them the matcher only moves forward, at most one path of the program.
    private func run(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, pc startPC: Int, pos startPos: Int,
                     scratch: inout RegexScratch) -> Int {
        let base = scratch.stack.count
        var pc = startPC
        var pos = startPos
        // Counted in a local; `scratch.steps` is brought up to date around calls.
        var steps = scratch.steps &+ 1
        defer { scratch.steps = steps }
        while true {
            var ok = true
            switch program[pc] {
            case let .set(k):
                if pos < upper && contains(k, text[pos]) { pos += 1; pc += 1 } else { ok = false }
            case let .scalar(v):
                if pos < upper && text[pos] == v { pos += 1; pc += 1 } else { ok = false }
            case let .slowSet(k):
                if pos < upper && sets[k].contains(text[pos]) { pos += 1; pc += 1 } else { ok = false }
            case let .repeatSet(k, minCount, maxCount, greedy):
                var n = 0
                while n < minCount && pos + n < upper && contains(k, text[pos + n]) { n += 1 }
                if n < minCount { ok = false; break }
                pos += n
                if greedy {
                    let minPos = pos
                    while (maxCount < 0 || n < maxCount) && pos < upper && contains(k, text[pos]) { pos += 1; n += 1 }
                    if pos > minPos { scratch.stack.append(RegexBacktrack(kind: .shrink, pc: pc + 1, pos: pos, aux: minPos)) }
                } else if maxCount < 0 || n < maxCount {
                    scratch.stack.append(RegexBacktrack(kind: .grow, pc: pc, pos: pos,
                                                        aux: maxCount < 0 ? Int.max : pos + (maxCount - n)))
                }
                pc += 1
            case let .split(first, second):
                scratch.stack.append(RegexBacktrack(kind: .resume, pc: second, pos: pos, aux: 0))
                pc = first
            case let .jump(target):
                pc = target
            case let .assert(kind):
                ok = RegexInstruction.holds(kind, text, lower, upper, pos)
                if ok { pc += 1 }
            case let .look(negative, body, next):
                // Atomic: the lookahead's own backtracking is discarded once it has decided.
                scratch.steps = steps
                let end = run(text, lower, upper, pc: body, pos: pos, scratch: &scratch)
                steps = scratch.steps
                if end == RegexScratch.overBudget {
                    scratch.dropStack(to: base)
                    return end
                }
                if (end >= 0) != negative { pc = next } else { ok = false }
            case .match:
                scratch.dropStack(to: base)
                return pos
            }
            if ok { continue }
            // Backtrack.
            while true {
                guard scratch.stack.count > base else { return RegexScratch.noMatch }
                steps &+= 1
                if steps > scratch.stepLimit {
                    scratch.dropStack(to: base)
                    return RegexScratch.overBudget
                }
                let entry = scratch.stack.removeLast()
                switch entry.kind {
                case .resume:
                    pc = entry.pc; pos = entry.pos
                case .shrink:
                    pos = entry.pos - 1
                    if pos > entry.aux { scratch.stack.append(RegexBacktrack(kind: .shrink, pc: entry.pc, pos: pos, aux: entry.aux)) }
                    pc = entry.pc
                case .grow:
                    guard case let .repeatSet(k, _, _, _) = program[entry.pc],
                          entry.pos < upper, entry.pos < entry.aux, contains(k, text[entry.pos]) else { continue }
                    pos = entry.pos + 1
                    scratch.stack.append(RegexBacktrack(kind: .grow, pc: entry.pc, pos: pos, aux: entry.aux))
                    pc = entry.pc + 1
                }
                break
            }
        }
    }
}

/// One saved choice point of the backtracking matchers.
struct RegexBacktrack {
    enum Kind: UInt8 { case resume, shrink, grow }
    var kind: Kind
    var pc: Int
    var pos: Int
    var aux: Int
}

enum RegexAssertion { case lineStart, lineEnd, textStart, textEnd, textEndOrFinalNewline }

enum RegexInstruction {
    /// One scalar of bitmap set k.
    case set(Int)
    /// One given scalar (literals need no bitmap: a pattern of 20k literal alternatives stays small).
    case scalar(UInt32)
    /// One scalar of set k, past the bitmap budget: tested against its description.
    case slowSet(Int)
    /// A quantified bitmap set: the common `[...]+` fast path (maxCount < 0 = unbounded).
    /// Only in `ScalarRegex.program`.
    case repeatSet(Int, minCount: Int, maxCount: Int, greedy: Bool)
    case split(Int, Int)
    case jump(Int)
    case assert(RegexAssertion)
    /// Lookahead: run the body at `body` (ends in `.match`), continue at `next`.
    case look(negative: Bool, body: Int, next: Int)
    case match

    @inline(__always)
    static func holds(_ kind: RegexAssertion, _ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, _ pos: Int) -> Bool {
        switch kind {
        case .lineStart: return pos == lower || text[pos - 1] == 0x0A
        case .lineEnd: return pos == upper || text[pos] == 0x0A
        case .textStart: return pos == lower
        case .textEnd: return pos == upper
        case .textEndOrFinalNewline: return pos == upper || (pos == upper - 1 && text[pos] == 0x0A)
        }
    }
}

// MARK: - Compiler

/// Turns the syntax tree into instructions; shares one table of distinct sets between the
/// programs it compiles.
struct RegexCompiler {
    let pattern: String
    private var program: [RegexInstruction] = []
    private(set) var sets: [ScalarSetItem] = []
    private var setIndex: [[UInt32]: Int] = [:]
    /// The first `bitmapCount` sets have bitmaps.
    var bitmapCount: Int { min(sets.count, ScalarRegex.maxBitmapSets) }
    private var fuse = true

    init(pattern: String) { self.pattern = pattern }

    mutating func compile(_ node: RegexNode, fuseSetRepetitions: Bool) throws -> [RegexInstruction] {
        program = []
        fuse = fuseSetRepetitions
        try emit(node)
        try append(.match)
        return program
    }

    private mutating func append(_ instruction: RegexInstruction) throws {
        guard program.count < ScalarRegex.maxProgramLength else {
            throw TokenizerError.unsupportedRegex(
                pattern: ScalarRegex.shorten(pattern),
                reason: "compiles to more than \(ScalarRegex.maxProgramLength) instructions")
        }
        program.append(instruction)
    }

    private mutating func setNumber(_ item: ScalarSetItem) -> Int {
        let key = item.key
        if let k = setIndex[key] { return k }
        sets.append(item)
        setIndex[key] = sets.count - 1
        return sets.count - 1
    }

    private mutating func emitSet(_ item: ScalarSetItem) throws {
        if case let .ranges(table) = item, table.count == 1, table[0].0 == table[0].1 {
            return try append(.scalar(table[0].0))
        }
        let k = setNumber(item)
        try append(k < ScalarRegex.maxBitmapSets ? .set(k) : .slowSet(k))
    }

    private mutating func emit(_ node: RegexNode) throws {
        switch node {
        case let .set(item):
            try emitSet(item)
        case let .sequence(items):
            for item in items { try emit(item) }
        case let .alternation(branches):
            // split L1, next; L1: a; jmp end; next: split L2, next2 ...
            var jumpsToEnd: [Int] = []
            for (i, branch) in branches.enumerated() {
                if i < branches.count - 1 {
                    let splitAt = program.count
                    try append(.split(0, 0))
                    try emit(branch)
                    jumpsToEnd.append(program.count)
                    try append(.jump(0))
                    program[splitAt] = .split(splitAt + 1, program.count)
                } else {
                    try emit(branch)
                }
            }
            for j in jumpsToEnd { program[j] = .jump(program.count) }
        case let .repetition(inner, minCount, maxCount, greedy):
            if fuse, case let .set(item) = inner {
                let k = setNumber(item)
                if k < ScalarRegex.maxBitmapSets {
                    return try append(.repeatSet(k, minCount: minCount, maxCount: maxCount ?? -1, greedy: greedy))
                }
            }
            if inner.canMatchEmpty && maxCount == nil {
                throw TokenizerError.unsupportedRegex(pattern: ScalarRegex.shorten(pattern),
                                                      reason: "unbounded repetition of a group that can match empty")
            }
            for _ in 0..<minCount { try emit(inner) }
            if let maxCount {
                // Each optional copy: split body, skip (greedy) or the reverse (lazy).
                var splits: [Int] = []
                for _ in minCount..<maxCount {
                    splits.append(program.count)
                    try append(.split(0, 0))
                    try emit(inner)
                }
                for s in splits { program[s] = greedy ? .split(s + 1, program.count) : .split(program.count, s + 1) }
            } else {
                let loop = program.count
                try append(.split(0, 0))
                try emit(inner)
                try append(.jump(loop))
                program[loop] = greedy ? .split(loop + 1, program.count) : .split(program.count, loop + 1)
            }
        case let .lookahead(body, negative):
            let at = program.count
            try append(.look(negative: negative, body: 0, next: 0))
            let bodyStart = program.count
            try emit(body)
            try append(.match)
            program[at] = .look(negative: negative, body: bodyStart, next: program.count)
        case let .assertion(kind):
            try append(.assert(kind))
        }
    }
}
