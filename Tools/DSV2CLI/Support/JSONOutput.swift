import Foundation

/// The one JSON writer of `--json`: snake_case keys whatever the Swift names, sorted keys, no
/// escaped slashes, non-finite numbers as the strings "nan", "inf", "-inf" (JSON has none).
enum JSONOutput {
    /// One line (`generate`, `chat`, `tokenize`) or pretty-printed (reports).
    static func encode<T: Encodable>(_ value: T, pretty: Bool = false) throws -> String {
        let encoder = JSONEncoder()
        encoder.keyEncodingStrategy = .convertToSnakeCase
        encoder.outputFormatting = pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                                          : [.sortedKeys, .withoutEscapingSlashes]
        encoder.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }

    /// Writes `value` and a newline to stdout.
    static func print<T: Encodable>(_ value: T, pretty: Bool = false) throws {
        Terminal.write(try encode(value, pretty: pretty) + "\n")
    }
}
