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
            let bit = ScalarSetItem.categoryBit(scalar.properties.generalCategory)
            return bit & (ScalarSetItem.letterMask | ScalarSetItem.markMask | ScalarSetItem.bit(.decimalNumber)
                          | ScalarSetItem.bit(.connectorPunctuation)) != 0
        case let .union(items):
            for item in items where item.contains(v) { return true }
            return false
        case let .not(item): return !item.contains(v)
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
    /// Sets bit v of `bitmap` (1024 words) for every BMP scalar v in the set.
    static func fillBMP(_ item: ScalarSetItem, _ bitmap: UnsafeMutablePointer<UInt64>) {
        for v in UInt32(0)..<0x10000 where !(0xD800...0xDFFF).contains(v) && item.contains(v) {
            bitmap[Int(v >> 6)] |= 1 << UInt64(v & 63)
        }
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
