/// How a `Split` step turns regex matches into pieces (tokenizers' `SplitDelimiterBehavior`).
enum SplitBehavior: String {
    case isolated = "Isolated", removed = "Removed", mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext", contiguous = "Contiguous"
}

/// One step of the pre-tokenizer `Sequence`. Each step re-splits every piece of the previous one.
enum PreTokenizerStep {
    /// `Split` with a regex (or a literal string, compiled to an escaped regex).
    case split(ScalarRegex, SplitBehavior, invert: Bool)
    /// `Digits`: isolate each Rust-`is_numeric` scalar (individual) or runs of them.
    case digits(individual: Bool)
    /// `ByteLevel`: optional prefix space and GPT-2 regex split; the byte mapping itself is
    /// implicit because our BPE works on bytes.
    case byteLevel(addPrefixSpace: Bool, regex: ScalarRegex?)

    /// GPT-2's pattern that `ByteLevel` uses when `use_regex` is true.
    static let gpt2Pattern = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
}

/// Turns (start, end, isMatch) splits into the pieces a behaviour keeps, like tokenizers'
/// `NormalizedString::split`; empty pieces are dropped.
@inline(__always)
func applySplitBehavior(_ behavior: SplitBehavior, splits: [(Int, Int, Bool)], into out: inout [(Int, Int)]) {
    switch behavior {
    case .isolated:
        for (s, e, _) in splits where e > s { out.append((s, e)) }
    case .removed:
        for (s, e, m) in splits where !m && e > s { out.append((s, e)) }
    case .mergedWithPrevious:
        var merged: [(Int, Int)] = []
        var previousMatch = false
        for (s, e, m) in splits {
            if m && !previousMatch, !merged.isEmpty { merged[merged.count - 1].1 = e } else { merged.append((s, e)) }
            previousMatch = m
        }
        for (s, e) in merged where e > s { out.append((s, e)) }
    case .mergedWithNext:
        var merged: [(Int, Int)] = []
        var previousMatch = false
        for (s, e, m) in splits.reversed() {
            if m && !previousMatch, !merged.isEmpty { merged[merged.count - 1].0 = s } else { merged.append((s, e)) }
            previousMatch = m
        }
        for (s, e) in merged.reversed() where e > s { out.append((s, e)) }
    case .contiguous:
        var merged: [(Int, Int)] = []
        var previousMatch = false
        for (s, e, m) in splits {
            if m == previousMatch, !merged.isEmpty { merged[merged.count - 1].1 = e } else { merged.append((s, e)) }
            previousMatch = m
        }
        for (s, e) in merged where e > s { out.append((s, e)) }
    }
}

/// One added token (tokenizer.json `added_tokens`).
public struct AddedToken {
    public let id: Int
    public let content: String
    public let special: Bool
    public let normalized: Bool
    public let lstrip: Bool
    public let rstrip: Bool
    public let singleWord: Bool
    let scalars: [UInt32]
}

/// Finds added tokens in text before pre-tokenization: leftmost match, longest among those that
/// start there (Aho-Corasick LeftmostLongest, as HF). A trie over scalars with a first-scalar filter.
struct AddedTokenMatcher {
    private struct Node { var children: [UInt32: Int32] = [:]; var token: Int32 = -1 }
    private var nodes = [Node()]
    private var firstBMP = [UInt64](repeating: 0, count: 1024)
    private var firstAstral = Set<UInt32>()
    let tokens: [AddedToken]

    init(_ tokens: [AddedToken]) {
        self.tokens = tokens
        for (t, token) in tokens.enumerated() where !token.scalars.isEmpty {
            var node = 0
            for s in token.scalars {
                if let next = nodes[node].children[s] { node = Int(next); continue }
                nodes.append(Node())
                nodes[node].children[s] = Int32(nodes.count - 1)
                node = nodes.count - 1
            }
            // A duplicate content keeps the first token (HF's map keeps one id per pattern).
            if nodes[node].token < 0 { nodes[node].token = Int32(t) }
            let first = token.scalars[0]
            if first < 0x10000 { firstBMP[Int(first >> 6)] |= 1 << UInt64(first & 63) } else { firstAstral.insert(first) }
        }
    }

    var isEmpty: Bool { nodes.count == 1 }

    /// Segments of `text[lower..<upper]`: (start, end, token index or -1 for plain text).
    func split(_ text: UnsafePointer<UInt32>, _ lower: Int, _ upper: Int, into out: inout [(Int, Int, Int)]) {
        if isEmpty { out.append((lower, upper, -1)); return }
        var startOffset = lower
        var p = lower
        while p < upper {
            let c = text[p]
            let maybe = c < 0x10000 ? firstBMP[Int(c >> 6)] & (1 << UInt64(c & 63)) != 0 : firstAstral.contains(c)
            guard maybe else { p += 1; continue }
            var node = 0
            var best = -1, bestEnd = p
            var q = p
            while q < upper, let next = nodes[node].children[text[q]] {
                node = Int(next)
                q += 1
                if nodes[node].token >= 0 { best = Int(nodes[node].token); bestEnd = q }
            }
            guard best >= 0 else { p += 1; continue }
            let token = tokens[best]
            var start = p, stop = bestEnd
            if token.singleWord {
                let startOK = start == lower || !AddedTokenMatcher.isWordScalar(text[start - 1])
                let stopOK = stop == upper || !AddedTokenMatcher.isWordScalar(text[stop])
                if !(startOK && stopOK) { p = bestEnd; continue }
            }
            if token.lstrip {
                while start > startOffset && UnicodeTables.isWhiteSpace(text[start - 1]) { start -= 1 }
            }
            if token.rstrip {
                while stop < upper && UnicodeTables.isWhiteSpace(text[stop]) { stop += 1 }
            }
            if startOffset < start { out.append((startOffset, start, -1)) }
            out.append((start, stop, best))
            startOffset = stop
            p = stop
        }
        if startOffset < upper { out.append((startOffset, upper, -1)) }
    }

    /// Rust `char::is_alphanumeric` (approximated with Swift's Unicode properties) or `_`.
    static func isWordScalar(_ v: UInt32) -> Bool {
        guard let s = Unicode.Scalar(v) else { return false }
        return v == 0x5F || s.properties.isAlphabetic || UnicodeTables.isRustNumeric(v)
    }
}
