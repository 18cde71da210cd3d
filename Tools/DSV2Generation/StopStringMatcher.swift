import DSV2Core
import DSV2Text
/// Finds stop strings in streamed text that arrives in arbitrary chunks (a stop string may span
/// several tokens). Text that could still become the start of a stop string is held back until
/// it is decided, so nothing after (or part of) a stop string is ever emitted.
/// Matching is scalar by scalar (never by grapheme or canonical equivalence).
public struct StopStringMatcher {
    public let stopStrings: [String]
    private let patterns: [[Unicode.Scalar]]
    private var pending: [Unicode.Scalar] = []
    /// True once a stop string was seen; later input is ignored.
    public private(set) var stopped = false
    /// The stop string that matched.
    public private(set) var matchedStopString: String?

    public init(stopStrings: [String]) {
        self.stopStrings = stopStrings.filter { !$0.isEmpty }
        patterns = self.stopStrings.map { Array($0.unicodeScalars) }
    }

    /// Adds a chunk; returns the text that is now safe to show and whether a stop string ended
    /// the stream (then the text before it is returned and the stop string itself is dropped).
    public mutating func feed(_ text: String) -> (text: String, stopped: Bool) {
        guard !stopped else { return ("", true) }
        pending.append(contentsOf: text.unicodeScalars)
        // Earliest occurrence of any stop string.
        var earliest: (position: Int, pattern: Int)? = nil
        for (p, pattern) in patterns.enumerated() {
            if let position = StopStringMatcher.firstIndex(of: pattern, in: pending),
               earliest == nil || position < earliest!.position {
                earliest = (position, p)
            }
        }
        if let earliest {
            let out = String(String.UnicodeScalarView(pending[..<earliest.position]))
            pending.removeAll()
            stopped = true
            matchedStopString = stopStrings[earliest.pattern]
            return (out, true)
        }
        // Hold back the longest suffix that is a proper prefix of some stop string.
        var hold = 0
        for pattern in patterns {
            var length = min(pattern.count - 1, pending.count)
            while length > hold {
                if pending[(pending.count - length)...].elementsEqual(pattern[..<length]) { hold = length; break }
                length -= 1
            }
        }
        let out = String(String.UnicodeScalarView(pending[..<(pending.count - hold)]))
        pending.removeFirst(pending.count - hold)
        return (out, false)
    }

    /// At the end of generation: the held-back text (it did not become a stop string).
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return stopped ? "" : String(String.UnicodeScalarView(pending))
    }

    static func firstIndex(of pattern: [Unicode.Scalar], in text: [Unicode.Scalar]) -> Int? {
        guard !pattern.isEmpty, pattern.count <= text.count else { return nil }
        for i in 0...(text.count - pattern.count) where text[i] == pattern[0] {
            if text[i..<(i + pattern.count)].elementsEqual(pattern) { return i }
        }
        return nil
    }
}
