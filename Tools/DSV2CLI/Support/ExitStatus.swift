import ArgumentParser
import DSV2
import DSV2Analysis
import DSV2Converter
import DSV2GGUF
import Foundation

/// A mistake in how the command was called or in its inputs: printed, exit status 2.
struct UsageError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The exit statuses of every command.
///
/// | status | meaning |
/// |---|---|
/// | 0 | done |
/// | 1 | the command ran and failed: a check broke (compare, verify), the model does not fit in memory, an output could not be written |
/// | 2 | usage or input error: a bad flag or value, an input file missing, unreadable or invalid, an input the model cannot take |
/// | 130 | interrupted (Ctrl-C); SIGTERM and SIGHUP give 143 and 129 |
enum ExitStatus {
    static let success: Int32 = 0
    static let failure: Int32 = 1
    static let usage: Int32 = 2
    static let interrupted: Int32 = 130

    /// The status an error ends the program with.
    static func code(for error: Error) -> Int32 {
        if let code = error as? ExitCode { return code.rawValue }
        switch error {
        case is UsageError, is ValidationError, is ModelOpenError, is DefaultModelError, is FileKindError,
             is ModelConfigError, is TokenizerError, is ChatTemplateError, is GenerationConfigError,
             is EngineChoiceError, is EngineOptionError, is ThresholdParseError, is GenerationError,
             is PerplexityError, is LogitsBaseError, is SynthError, is EngineLoadError, is WeightSourceError,
             is TensorConversionError, is MappedFileError, is TokenizeCommand.LineError:
            return inputError(error) ? usage : failure
        case let error as SafetensorsError:
            if case .writeFailed = error { return failure }
            return usage
        case let error as ContainerError:
            if case .cannotWrite = error { return failure }
            return usage
        case let error as GGUFError:
            return error.writing ? failure : usage
        case let error as LanguageModelError:
            if case .badCacheLength = error { return failure }
            return usage
        default:
            return failure
        }
    }

    /// The few cases of the input-error types that are about writing, not reading.
    private static func inputError(_ error: Error) -> Bool {
        switch error {
        case let error as LogitsBaseError:
            if case .writeFailed = error { return false }
        case let error as SynthError:
            if case .cannotWrite = error { return false }
        default: break
        }
        return true
    }

    /// `dsv2 <command>: error: <message>` on stderr.
    static func report(_ message: String, command: String) {
        Terminal.writeError("\(command): error: \(message)\n")
    }
}
