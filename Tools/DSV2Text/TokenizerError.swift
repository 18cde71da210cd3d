import Foundation

/// Everything that can go wrong loading or running a tokenizer or a chat template. Each case names
/// the file, the JSON field or the construct involved.
public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    /// The file could not be read or is not the JSON we expect.
    case invalidFile(path: String, reason: String)
    /// A required field is missing or has the wrong type (`field` is a JSON path like `model.merges[3]`).
    case invalidField(path: String, field: String, reason: String)
    /// A pipeline component (normalizer, pre-tokenizer, model, decoder, post-processor) we do not implement.
    case unsupportedComponent(path: String, field: String, type: String)
    /// A Split regex uses syntax our scalar regex engine does not implement.
    case unsupportedRegex(pattern: String, reason: String)
    /// A Split regex is malformed.
    case invalidRegex(pattern: String, reason: String)
    /// A token or id that the vocabulary does not contain.
    case unknownToken(String)
    /// A Split regex needed more than `steps` steps on a piece of `scalars` scalars (a pattern
    /// that backtracks without bound even with memoization; no real tokenizer comes close).
    case regexTooCostly(pattern: String, scalars: Int, steps: Int)
    /// `field` of the file at `path` failed with `error` (e.g. which pre-tokenizer a regex error is from).
    indirect case inField(path: String, field: String, TokenizerError)
    /// The `chat_template` of the tokenizer_config.json at `path` failed to parse or to render.
    case chatTemplate(path: String, ChatTemplateError)

    public var description: String {
        switch self {
        case let .invalidFile(path, reason): return "\(path): \(reason)"
        case let .invalidField(path, field, reason): return "\(path): field `\(field)`: \(reason)"
        case let .unsupportedComponent(path, field, type):
            return "\(path): `\(field)` of type `\(type)` is not supported by the dsv2 tokenizer"
        case let .unsupportedRegex(pattern, reason): return "unsupported regex syntax in /\(pattern)/: \(reason)"
        case let .invalidRegex(pattern, reason): return "invalid regex /\(pattern)/: \(reason)"
        case let .unknownToken(token): return "unknown token \(token)"
        case let .regexTooCostly(pattern, scalars, steps):
            return "regex /\(pattern)/ needed more than \(steps) steps on a piece of \(scalars) scalars"
        case let .inField(path, field, error): return "\(path): field `\(field)`: \(error)"
        case let .chatTemplate(path, error): return "\(path): field `chat_template`: \(error)"
        }
    }
}
