/// GPT-2's reversible byte <-> printable-character alphabet used by the ByteLevel pre-tokenizer
/// and decoder: the 188 printable Latin-1 bytes (`!`..`~`, `¡`..`¬`, `®`..`ÿ`) stand for themselves,
/// the other 68 bytes map to U+0100 + n in byte order (so space is `Ġ` U+0120, `\n` is `Ċ` U+010A).
enum ByteLevel {
    /// byte -> scalar of its alphabet character
    static let byteToScalar: [UInt32] = {
        var table = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable { table[b] = UInt32(b) } else { table[b] = 0x100 + extra; extra += 1 }
        }
        return table
    }()

    /// alphabet scalar -> byte (only for scalars below 0x144; -1 = not in the alphabet)
    static let scalarToByte: [Int16] = {
        var table = [Int16](repeating: -1, count: 0x144)
        for (b, s) in byteToScalar.enumerated() { table[Int(s)] = Int16(b) }
        return table
    }()

    /// The bytes a token string stands for, or nil when one of its characters is outside the
    /// alphabet (then the ByteLevel decoder uses the token's own UTF-8, like HF's `decode_chain`).
    static func bytes(ofToken token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.utf8.count)
        for scalar in token.unicodeScalars {
            let v = Int(scalar.value)
            guard v < scalarToByte.count, scalarToByte[v] >= 0 else { return nil }
            out.append(UInt8(scalarToByte[v]))
        }
        return out
    }

    /// The alphabet string for raw bytes (what HF shows in `tokens`).
    static func token(ofBytes bytes: [UInt8]) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(byteToScalar[Int(b)])!) }
        return String(s)
    }
}
