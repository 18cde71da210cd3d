/// Incremental detokenizer for generation, with exactly the semantics of Hugging Face
/// `tokenizers.decoders.DecodeStream`: text is emitted only when the decoded window grew and does
/// not end in U+FFFD (so half a UTF-8 character is never shown; it comes out once complete), and
/// the window is then moved so decoding stays O(window).
public struct StreamingDecoder {
    public enum StreamError: Error, CustomStringConvertible {
        /// The new decoding did not start with the text already emitted (HF `InvalidPrefix`).
        case invalidPrefix
        public var description: String { "streaming decode: the decoded text no longer starts with the emitted prefix" }
    }

    let tokenizer: Tokenizer
    public let skipSpecialTokens: Bool
    private var ids: [Int] = []
    private var prefix: [UInt8] = []     // UTF-8 of the decoded window already emitted
    private var prefixIndex = 0

    public init(tokenizer: Tokenizer, skipSpecialTokens: Bool = false) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Feeds one id; returns the newly completed text, or nil when nothing can be shown yet.
    public mutating func step(_ id: Int) throws -> String? {
        ids.append(id)
        let string = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
        // U+FFFD = EF BF BD
        let endsWithReplacement = string.count >= 3 && string[string.count - 3] == 0xEF
            && string[string.count - 2] == 0xBF && string[string.count - 1] == 0xBD
        guard string.count > prefix.count && !endsWithReplacement else { return nil }
        guard string.starts(with: prefix) else { throw StreamError.invalidPrefix }
        let newText = String(decoding: string[prefix.count...], as: UTF8.self)
        let newPrefixIndex = ids.count - prefixIndex
        ids.removeFirst(prefixIndex)
        prefix = Array(tokenizer.decode(ids, skipSpecialTokens: skipSpecialTokens).utf8)
        prefixIndex = newPrefixIndex
        return newText
    }

    /// Forgets everything fed so far.
    public mutating func reset() {
        ids.removeAll(); prefix.removeAll(); prefixIndex = 0
    }
}
