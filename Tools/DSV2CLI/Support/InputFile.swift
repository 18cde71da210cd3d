import DSV2
import Foundation

/// Input files read whole (prompts, texts): regular files only, checked before opening so a
/// FIFO or device never blocks; "-" is standard input.
enum InputFile {
    static func read(_ path: String, option: String) throws -> Data {
        if path == "-" { return FileHandle.standardInput.readDataToEndOfFile() }
        do { try FileKind.requireRegularFile(path) } catch let error as FileKindError {
            throw UsageError("\(option) \(error)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw UsageError("\(option) \(path): cannot be read")
        }
        return data
    }
}
