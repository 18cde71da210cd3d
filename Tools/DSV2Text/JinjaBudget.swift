/// What one render may spend: evaluation steps and loop iterations, and bytes of strings and
/// lists it creates. Running out is an error naming the limit, never a hang or the OOM killer
/// (`{{ 'a' * 1000000000000 }}`, a string doubled in a loop, nested `range(100000)` loops).
///
/// Generous: the base allowance is thousands of times what a real chat template needs (the
/// DeepSeek template spends ~30 steps and a few hundred bytes per message, see
/// ChatTemplateTests), and every byte of input (messages, variables) adds more, so long
/// conversations never come near it.
struct JinjaBudget {
    static let baseSteps = 1_000_000
    static let stepsPerInputByte = 1
    static let baseBytes = 64 << 20
    static let bytesPerInputByte = 16
    /// Lists, dicts and namespaces nested deeper than this are an error (printing, comparing and
    /// releasing a value recurse once per level).
    static let maxValueDepth = 512
    /// What one list element is charged, in bytes.
    static let bytesPerElement = 16

    let totalSteps: Int
    let totalBytes: Int
    private(set) var steps: Int
    private(set) var bytes: Int

    init(inputBytes: Int) {
        let input = min(max(0, inputBytes), Int.max / 64)
        totalSteps = JinjaBudget.baseSteps + JinjaBudget.stepsPerInputByte * input
        totalBytes = JinjaBudget.baseBytes + JinjaBudget.bytesPerInputByte * input
        steps = totalSteps
        bytes = totalBytes
    }

    var stepsUsed: Int { totalSteps - steps }
    var bytesUsed: Int { totalBytes - bytes }

    mutating func step(_ count: Int = 1) throws {
        steps -= count
        if steps < 0 {
            throw ChatTemplateError.runtime("the template ran more than \(totalSteps) steps (a loop without end?)")
        }
    }

    /// Charges `count` bytes already allocated (results no bigger than a few times their inputs).
    mutating func charge(bytes count: Int) throws {
        bytes -= count
        if bytes < 0 { throw outOfBytes() }
    }

    /// Checks, before allocating, that `count` × `size` bytes fit in what is left (overflow included).
    func ensure(_ count: Int, times size: Int = 1) throws {
        let (total, overflow) = max(0, count).multipliedReportingOverflow(by: max(0, size))
        if overflow || total > bytes { throw outOfBytes() }
    }

    private func outOfBytes() -> ChatTemplateError {
        .runtime("the template would build more than \(totalBytes) bytes of strings and lists")
    }
}

extension JinjaValue {
    /// Bytes of the strings in this value (what a render is given; its budget grows with it).
    var inputBytes: Int {
        var total = 0
        var stack = [self]
        while let value = stack.popLast() {
            switch value {
            case let .string(s): total += s.utf8.count
            case let .list(items): total += items.count; stack += items
            case let .dict(members): total += members.count; for (k, v) in members { total += k.utf8.count; stack.append(v) }
            default: total += 1
            }
        }
        return total
    }

    /// Bytes charged for this value itself (not what it shares with its inputs).
    var chargedBytes: Int {
        switch self {
        case let .string(s): return s.utf8.count
        case let .list(items): return items.count * JinjaBudget.bytesPerElement
        case let .dict(members): return members.count * 2 * JinjaBudget.bytesPerElement
        default: return 0
        }
    }

    /// Checks a value about to be stored inside a list, dict or namespace: it may hold no
    /// namespace (so no cycle and no chain of namespaces can form) and, stored, may not nest deeper
    /// than `JinjaBudget.maxValueDepth`. The walk is charged to `budget`.
    func checkStorable(_ budget: inout JinjaBudget) throws {
        var stack: [(JinjaValue, Int)] = [(self, 1)]
        while let (value, depth) = stack.popLast() {
            try budget.step()
            switch value {
            case .namespace:
                throw ChatTemplateError.unsupported("a namespace stored inside a list, dict or namespace")
            case let .list(items):
                guard depth < JinjaBudget.maxValueDepth else { throw tooDeep() }
                for item in items where item.isContainer { stack.append((item, depth + 1)) }
            case let .dict(members):
                guard depth < JinjaBudget.maxValueDepth else { throw tooDeep() }
                for (_, item) in members where item.isContainer { stack.append((item, depth + 1)) }
            default: break
            }
        }
    }

    private var isContainer: Bool {
        switch self {
        case .list, .dict, .namespace: return true
        default: return false
        }
    }

    private func tooDeep() -> ChatTemplateError {
        .runtime("lists and dicts nested more than \(JinjaBudget.maxValueDepth) deep")
    }
}
