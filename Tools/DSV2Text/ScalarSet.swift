/// A set of Unicode scalars as the Split regexes describe them: ranges, `\p{..}` general
/// categories, `\s`/`\d`/`\w`, unions and negations.
///
/// Membership is answered from a 64 Ki-bit bitmap for the BMP (filled once at compile time) and
/// by evaluating the description for astral scalars, so the hot path is one load and a shift.
indirect enum ScalarSetItem {
    case ranges(ScalarRanges)                // sorted, merged
    case categories(UInt32)                  // bit mask over `ScalarSetItem.categoryBit`
    case whiteSpace                          // Unicode White_Space (\s)
    case word                                // \w: letters, marks, decimal digits, connector punctuation
    case union([ScalarSetItem])
    case not(ScalarSetItem)

    func contains(_ v: UInt32) -> Bool {
        switch self {
        case let .ranges(table): return UnicodeTables.contains(table, v)
        case let .categories(mask):
            guard let scalar = Unicode.Scalar(v) else { return false }
            return mask & ScalarSetItem.categoryBit(scalar.properties.generalCategory) != 0
        case .whiteSpace: return UnicodeTables.isWhiteSpace(v)
        case .word:
            guard let scalar = Unicode.Scalar(v) else { return false }
            return ScalarSetItem.categoryBit(scalar.properties.generalCategory) & ScalarSetItem.wordMask != 0
        case let .union(items):
            for item in items where item.contains(v) { return true }
            return false
        case let .not(item): return !item.contains(v)
        }
    }

    /// A union with nested unions flattened, its ranges merged into one table and its category
    /// masks into one mask (a class of many items then costs about one item to match).
    static func normalizedUnion(_ items: [ScalarSetItem]) -> ScalarSetItem {
        var ranges: ScalarRanges = []
        var mask: UInt32 = 0
        var others: [ScalarSetItem] = []
        var seen = Set<[UInt32]>()
        func add(_ item: ScalarSetItem) {
            switch item {
            case let .union(children): children.forEach(add)
            case let .ranges(table): ranges += table
            case let .categories(m): mask |= m
            default: if seen.insert(item.key).inserted { others.append(item) }
            }
        }
        items.forEach(add)
        var result: [ScalarSetItem] = []
        if !ranges.isEmpty { result.append(.ranges(merged(ranges))) }
        if mask != 0 { result.append(.categories(mask)) }
        result += others
        return result.count == 1 ? result[0] : .union(result)
    }

    /// Sorted, overlapping and adjacent ranges joined.
    static func merged(_ input: ScalarRanges) -> ScalarRanges {
        var out: ScalarRanges = []
        for r in input.sorted(by: { $0.0 < $1.0 }) {
            if let last = out.last, r.0 <= last.1 &+ 1 {
                out[out.count - 1].1 = max(last.1, r.1)
            } else {
                out.append(r)
            }
        }
        return out
    }

    /// A value that is equal for equal descriptions (to share one compiled set between them).
    var key: [UInt32] {
        var out: [UInt32] = []
        appendKey(to: &out)
        return out
    }

    private func appendKey(to out: inout [UInt32]) {
        switch self {
        case let .ranges(table):
            out += [1, UInt32(truncatingIfNeeded: table.count)]
            for (low, high) in table { out += [low, high] }
        case let .categories(mask): out += [2, mask]
        case .whiteSpace: out.append(3)
        case .word: out.append(4)
        case let .union(items):
            out += [5, UInt32(truncatingIfNeeded: items.count)]
            for item in items { item.appendKey(to: &out) }
        case let .not(item):
            out.append(6)
            item.appendKey(to: &out)
        }
    }

    static func bit(_ c: Unicode.GeneralCategory) -> UInt32 { categoryBit(c) }

    static func categoryBit(_ c: Unicode.GeneralCategory) -> UInt32 {
        let index: UInt32
        switch c {
        case .uppercaseLetter: index = 0
        case .lowercaseLetter: index = 1
        case .titlecaseLetter: index = 2
        case .modifierLetter: index = 3
        case .otherLetter: index = 4
        case .nonspacingMark: index = 5
        case .spacingMark: index = 6
        case .enclosingMark: index = 7
        case .decimalNumber: index = 8
        case .letterNumber: index = 9
        case .otherNumber: index = 10
        case .connectorPunctuation: index = 11
        case .dashPunctuation: index = 12
        case .openPunctuation: index = 13
        case .closePunctuation: index = 14
        case .initialPunctuation: index = 15
        case .finalPunctuation: index = 16
        case .otherPunctuation: index = 17
        case .mathSymbol: index = 18
        case .currencySymbol: index = 19
        case .modifierSymbol: index = 20
        case .otherSymbol: index = 21
        case .spaceSeparator: index = 22
        case .lineSeparator: index = 23
        case .paragraphSeparator: index = 24
        case .control: index = 25
        case .format: index = 26
        case .surrogate: index = 27
        case .privateUse: index = 28
        case .unassigned: index = 29
        @unknown default: index = 29
        }
        return 1 << index
    }

    static let letterMask: UInt32 = 0b11111
    static let markMask: UInt32 = 0b111 << 5
    static let numberMask: UInt32 = 0b111 << 8
    static let punctuationMask: UInt32 = 0b1111111 << 11
    static let symbolMask: UInt32 = 0b1111 << 18
    static let separatorMask: UInt32 = 0b111 << 22
    static let otherMask: UInt32 = 0b11111 << 25
    /// `\w`: letters, marks, decimal digits, connector punctuation.
    static let wordMask: UInt32 = letterMask | markMask | (1 << 8) | (1 << 11)

    /// The mask of a `\p{..}` name (one- or two-letter general category, or its long name).
    static func categoryMask(named raw: String) -> UInt32? {
        let name = raw.replacingOccurrences(of: "_", with: "").replacingOccurrences(of: " ", with: "").lowercased()
        switch name {
        case "l", "letter": return letterMask
        case "lu", "uppercaseletter": return 1 << 0
        case "ll", "lowercaseletter": return 1 << 1
        case "lt", "titlecaseletter": return 1 << 2
        case "lm", "modifierletter": return 1 << 3
        case "lo", "otherletter": return 1 << 4
        case "lc", "casedletter": return 0b111
        case "m", "mark", "combiningmark": return markMask
        case "mn", "nonspacingmark": return 1 << 5
        case "mc", "spacingmark": return 1 << 6
        case "me", "enclosingmark": return 1 << 7
        case "n", "number": return numberMask
        case "nd", "decimalnumber", "digit": return 1 << 8
        case "nl", "letternumber": return 1 << 9
        case "no", "othernumber": return 1 << 10
        case "p", "punctuation", "punct": return punctuationMask
        case "pc", "connectorpunctuation": return 1 << 11
        case "pd", "dashpunctuation": return 1 << 12
        case "ps", "openpunctuation": return 1 << 13
        case "pe", "closepunctuation": return 1 << 14
        case "pi", "initialpunctuation": return 1 << 15
        case "pf", "finalpunctuation": return 1 << 16
        case "po", "otherpunctuation": return 1 << 17
        case "s", "symbol": return symbolMask
        case "sm", "mathsymbol": return 1 << 18
        case "sc", "currencysymbol": return 1 << 19
        case "sk", "modifiersymbol": return 1 << 20
        case "so", "othersymbol": return 1 << 21
        case "z", "separator": return separatorMask
        case "zs", "spaceseparator": return 1 << 22
        case "zl", "lineseparator": return 1 << 23
        case "zp", "paragraphseparator": return 1 << 24
        case "c", "other": return otherMask
        case "cc", "control", "cntrl": return 1 << 25
        case "cf", "format": return 1 << 26
        case "cs", "surrogate": return 1 << 27
        case "co", "privateuse": return 1 << 28
        case "cn", "unassigned": return 1 << 29
        case "alpha", "alphabetic": return nil  // property, not a category: reported as unsupported
        default: return nil
        }
    }
}

/// Compiling a set: its BMP bitmap and whether astral scalars need a look at the description.
enum ScalarSet {
    /// Sets bit v of `bitmap` (1024 words) for every BMP scalar v in the set (never a surrogate).
    /// Ranges are written directly and categories come from one table, so a class of thousands
    /// of items compiles in about the time of its size.
    static func fillBMP(_ item: ScalarSetItem, _ bitmap: UnsafeMutablePointer<UInt64>) {
        switch item {
        case let .ranges(table): fillRanges(table, bitmap)
        case .whiteSpace: fillRanges(UnicodeTables.whiteSpace, bitmap)
        case let .categories(mask): fillCategories(mask, bitmap)
        case .word: fillCategories(ScalarSetItem.wordMask, bitmap)
        case let .union(items): for child in items { fillBMP(child, bitmap) }
        case let .not(inner):
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 1024) { scratch in
                let base = scratch.baseAddress!
                base.initialize(repeating: 0, count: 1024)
                fillBMP(inner, base)
                for w in 0..<1024 where !surrogateWords.contains(w) { bitmap[w] |= ~base[w] }
            }
        }
    }

    /// Words 864..<896 of a BMP bitmap hold the surrogates, which never occur in text.
    private static let surrogateWords = (0xD800 >> 6)..<(0xE000 >> 6)

    private static func fillRanges(_ table: ScalarRanges, _ bitmap: UnsafeMutablePointer<UInt64>) {
        for (low, high) in table where low < 0x10000 {
            for v in low...min(high, 0xFFFF) where !(0xD800...0xDFFF).contains(v) {
                bitmap[Int(v >> 6)] |= 1 << UInt64(v & 63)
            }
        }
    }

    private static func fillCategories(_ mask: UInt32, _ bitmap: UnsafeMutablePointer<UInt64>) {
        bmpCategoryBits.withUnsafeBufferPointer { bits in
            for v in 0..<0x10000 where bits[v] & mask != 0 { bitmap[v >> 6] |= 1 << UInt64(v & 63) }
        }
    }

    /// `ScalarSetItem.categoryBit` of every BMP scalar (0 for surrogates), computed once.
    private static let bmpCategoryBits: [UInt32] = (0..<0x10000).map { v in
        Unicode.Scalar(UInt32(v)).map { ScalarSetItem.categoryBit($0.properties.generalCategory) } ?? 0
    }

    /// True when no astral scalar can be a member (saves evaluating the description).
    static func provablyBMPOnly(_ item: ScalarSetItem) -> Bool {
        switch item {
        case let .ranges(table): return (table.last?.1 ?? 0) < 0x10000
        case .whiteSpace: return true
        case let .union(items): return items.allSatisfy(provablyBMPOnly)
        default: return false
        }
    }
}
