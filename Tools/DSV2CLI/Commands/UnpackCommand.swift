import ArgumentParser
import Foundation
import DSV2
import DSV2Converter

/// `dsv2 unpack`: compressed container → raw (mmap-ready) container, same tensor types.
struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Decompress a .dsv2 container into a raw, mmap-ready one (same tensor types and bytes).")

    @Argument(help: "The compressed container.")
    var container: String

    @OptionGroup var threads: ThreadOptions
    @OptionGroup var target: ContainerOutputOptions

    func run() throws {
        let destination = try target.prepareDestination()
        let reader = try ContainerReader(path: container)
        let reporter = ProgressReporter(quiet: target.quiet || target.json)
        let summary = try Converter.unpack(reader, to: destination, threads: threads.count, overwrite: target.force) {
            reporter.update($0)
        }
        reporter.finish()
        try target.report(ContainerSummaryJSON(output: target.output, tensors: summary.metadata.tensors.count,
                                               outputBytes: summary.outputBytes, quantization: summary.metadata.quantization),
                          line: "wrote \(target.output): \(summary.metadata.tensors.count) tensors, \(ProgressReporter.bytes(summary.outputBytes))",
                          reporter: reporter)
    }
}
