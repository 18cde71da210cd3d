import ArgumentParser
import DSV2
import DSV2Converter
import Foundation

/// The output options of the commands that write a container (`convert`, `unpack`).
struct ContainerOutputOptions: ParsableArguments {
    @OptionGroup var target: OutputOptions

    @Flag(name: [.customShort("q"), .long], help: "No progress output.")
    var quiet = false

    @Flag(name: .long, help: "Print a JSON summary of what was written.")
    var json = false

    var output: String { target.output }
    var force: Bool { target.force }

    /// The output URL (see `OutputOptions.destination`). The writer fills a temporary file next
    /// to it and renames it at the end; a signal or an error removes the temporary.
    func prepareDestination() throws -> URL { try target.destination() }

    /// The summary line (or JSON object) of a written container.
    func report(_ summary: ContainerSummaryJSON, line: String, reporter: ProgressReporter) throws {
        if json { try JSONOutput.print(summary, pretty: true) } else { reporter.note(line) }
    }
}

/// `--json` of `convert`, `unpack` and `synth`.
struct ContainerSummaryJSON: Encodable {
    var output: String
    var tensors: Int
    var outputBytes: Int
    var inputBytes: Int?
    var seconds: Double?
    var quantization: String?
}

extension ProgressReporter {
    /// Shows a conversion's progress: input bytes, tensors done, the tensor at work.
    func update(_ p: ConversionProgress) {
        update(done: p.inputBytesDone, total: p.inputBytesTotal, items: p.tensorsDone, itemCount: p.tensorCount,
               label: p.tensorName, elapsed: p.elapsedSeconds, force: p.tensorsDone == p.tensorCount)
    }
}
