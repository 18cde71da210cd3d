/// The memoizing matcher: the same leftmost-first backtracking over `memoProgram`, but each
/// (instruction, position) state is entered at most once per `matches` call.
///
/// Why that is exact: without captures or backreferences, whether a match can be completed from
/// a state depends only on the state. The first time the search enters a state, everything
/// reachable from it is explored before anything older on the stack; if that found no match, no
/// later entry can, from this start position or any later one. The only states entered without
/// having failed are those on the path of the match that was found; they end at the match end
/// `e`, where the next search starts, so that column is forgotten (`forgetColumn`). A lookahead
/// body that succeeds may likewise leave entered-but-not-failed states: the ones it entered are
/// logged in `trail` and forgotten.
///
/// Memory: one bit per state in a ring of columns (one per position) from the current search
/// start; positions past the ring are not memoized, so only then can the step limit be reached.
extension ScalarRegex {
    /// `matches` from `from` on, on the memo program (after the fast matcher gave up, or directly).
    @inline(never)
    func memoMatches(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, from: Int, lastMatchEnd previousEnd: Int,
                     into out: inout [(Int, Int)], scratch: inout RegexScratch) {
        var searchFrom = from
        var lastMatchEnd = previousEnd
        scratch.startMemo(programLength: memoProgram.count, from: from, upper: upper)
        while searchFrom <= upper {
            guard let (s, e) = memoSearch(text, lower, upper, from: searchFrom, scratch: &scratch) else { return }
            if s == RegexScratch.overBudget {
                scratch.failure = RegexFailure(regex: self, scalars: upper - lower, steps: scratch.stepLimit)
                return
            }
            scratch.forgetColumn(e)
            if s == e && lastMatchEnd == e {
                searchFrom += 1
                continue
            }
            searchFrom = e
            lastMatchEnd = e
            out.append((s, e))
        }
    }

    /// `search` on the memo program.
    func memoSearch(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, from: Int,
                    scratch: inout RegexScratch) -> (Int, Int)? {
        var start = from
        while start <= upper {
            if firstSet >= 0 {
                while start < upper && !contains(firstSet, text[start]) { start += 1 }
                if start >= upper { return nil }
            }
            scratch.advanceWindow(to: start)
            let end = runMemo(text, lower, upper, pc: 0, pos: start, inLookahead: false, scratch: &scratch)
            if end >= 0 { return (start, end) }
            if end == RegexScratch.overBudget { return (RegexScratch.overBudget, 0) }
            start += 1
        }
        return nil
    }

    private func runMemo(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, pc startPC: Int, pos startPos: Int,
                         inLookahead: Bool, scratch: inout RegexScratch) -> Int {
        let base = scratch.stack.count
        var pc = startPC
        var pos = startPos
        while true {
            var ok = false
            if scratch.enter(pc, pos, logged: inLookahead) {
                ok = true
                scratch.steps &+= 1
                switch memoProgram[pc] {
                case let .set(k):
                    if pos < upper && contains(k, text[pos]) { pos += 1; pc += 1 } else { ok = false }
                case let .scalar(v):
                    if pos < upper && text[pos] == v { pos += 1; pc += 1 } else { ok = false }
                case let .slowSet(k):
                    if pos < upper && sets[k].contains(text[pos]) { pos += 1; pc += 1 } else { ok = false }
                case .repeatSet:
                    // Never compiled into the memo program (its states would not be (pc, pos)).
                    assertionFailure("repeatSet in the memo program")
                    ok = false
                case let .split(first, second):
                    scratch.stack.append(RegexBacktrack(kind: .resume, pc: second, pos: pos, aux: 0))
                    pc = first
                case let .jump(target):
                    pc = target
                case let .assert(kind):
                    ok = RegexInstruction.holds(kind, text, lower, upper, pos)
                    if ok { pc += 1 }
                case let .look(negative, body, next):
                    let trailStart = scratch.trail.count
                    let end = runMemo(text, lower, upper, pc: body, pos: pos, inLookahead: true, scratch: &scratch)
                    if end == RegexScratch.overBudget {
                        scratch.dropStack(to: base)
                        return end
                    }
                    if end >= 0 {
                        scratch.forgetLogged(from: trailStart)
                    } else if !inLookahead {
                        // All of them failed: keep the bits, drop the log.
                        scratch.trail.removeSubrange(trailStart...)
                    }
                    if (end >= 0) != negative { pc = next } else { ok = false }
                case .match:
                    scratch.dropStack(to: base)
                    return pos
                }
            }
            if ok { continue }
            if scratch.steps > scratch.stepLimit {
                scratch.dropStack(to: base)
                return RegexScratch.overBudget
            }
            guard scratch.stack.count > base else { return RegexScratch.noMatch }
            let entry = scratch.stack.removeLast()
            pc = entry.pc
            pos = entry.pos
        }
    }
}

/// The memoizing matcher ran out of steps (`Tokenizer.encode` turns it into a `TokenizerError`
/// naming the file and the pre-tokenizer).
struct RegexFailure {
    let regex: ScalarRegex
    let scalars: Int
    let steps: Int
}

/// Reusable state of the matchers for one tokenizer call: the backtracking stack, the step count
/// and the memo bits.
struct RegexScratch {
    static let noMatch = -1
    static let overBudget = -2
    /// Memo bits at most (16 MiB): the ring holds this many states.
    static let memoBits = 1 << 27
    /// Memo-matcher steps allowed per state of the range, beyond a constant: a state is entered at
    /// most once while the ring covers the search; the rest is room for lookahead bodies.
    static let memoStepsPerState = 64

    var stack: [RegexBacktrack] = []
    /// Size of the memo ring in bits (tests make it small).
    var memoBitLimit = RegexScratch.memoBits
    /// Set when a `matches` call ran out of steps (its matches are incomplete).
    var failure: RegexFailure?
    var steps = 0
    var stepLimit = 0

    private var memo: [UInt64] = []
    /// Instructions per column.
    private var columnBits = 0
    /// Columns in the ring; position p lives in column p % columns while p < windowBase + columns.
    private var columns = 0
    private var windowBase = 0
    /// Memo bits set inside lookahead bodies (forgotten if the body succeeds).
    fileprivate(set) var trail: [Int] = []

    init() {}

    /// Removes the choice points above `base` (those of a finished run).
    @inline(__always)
    mutating func dropStack(to base: Int) {
        if stack.count > base { stack.removeLast(stack.count - base) }
    }

    /// Clears the memo for a range `from...upper` and a program of `programLength` instructions.
    mutating func startMemo(programLength: Int, from: Int, upper: Int) {
        columnBits = programLength
        columns = max(1, min(upper - from + 1, memoBitLimit / max(1, programLength)))
        windowBase = from
        memo.removeAll(keepingCapacity: true)
        memo.append(contentsOf: repeatElement(0, count: (columns * columnBits + 63) / 64))
        trail.removeAll(keepingCapacity: true)
        steps = 0
        stepLimit = RegexScratch.memoStepsPerState * (upper - from + 1) * programLength + (1 << 22)
    }

    /// Marks (pc, pos) entered; false when it already was. Positions past the ring always enter.
    @inline(__always)
    fileprivate mutating func enter(_ pc: Int, _ pos: Int, logged: Bool) -> Bool {
        guard pos - windowBase < columns else { return true }
        let bit = (pos % columns) * columnBits + pc
        let mask: UInt64 = 1 << UInt64(bit & 63)
        if memo[bit >> 6] & mask != 0 { return false }
        memo[bit >> 6] |= mask
        if logged { trail.append(bit) }
        return true
    }

    /// Moves the ring to start at `start`: columns of positions before it are cleared for reuse.
    mutating func advanceWindow(to start: Int) {
        guard start > windowBase else { return }
        let dropped = min(start - windowBase, columns)
        for p in windowBase..<(windowBase + dropped) { clearColumn(p % columns) }
        windowBase = start
    }

    /// Forgets the states at position `pos` (those of a found match's path).
    mutating func forgetColumn(_ pos: Int) {
        if pos >= windowBase && pos - windowBase < columns { clearColumn(pos % columns) }
    }

    fileprivate mutating func forgetLogged(from start: Int) {
        for bit in trail[start...] { memo[bit >> 6] &= ~(1 << UInt64(bit & 63)) }
        trail.removeSubrange(start...)
    }

    private mutating func clearColumn(_ column: Int) {
        let first = column * columnBits, end = first + columnBits
        var bit = first
        while bit < end {
            if bit & 63 == 0 && end - bit >= 64 {
                memo[bit >> 6] = 0
                bit += 64
            } else {
                memo[bit >> 6] &= ~(1 << UInt64(bit & 63))
                bit += 1
            }
        }
    }
}
