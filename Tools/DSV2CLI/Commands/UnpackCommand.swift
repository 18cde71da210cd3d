import ArgumentParser
import Foundation
import DSV2Container
import DSV2Converter

/// `dsv2 unpack`: compressed container → raw (mmap-ready) container, same tensor types.
struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Decompress a .dsv2 container into a raw, mmap-ready one (same tensor types and bytes).")

    @Argument(help: "The compressed container.")
    var container: String

    @Option(help: "Tensors decoded in parallel.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @OptionGroup var target: ContainerOutputOptions

    func run() throws {
        let destination = try target.prepareDestination()
        let reader = try ContainerReader(path: container)
        let reporter = ProgressReporter(quiet: target.quiet)
        let summary = try Converter.unpack(reader, to: destination, threads: max(1, threads), overwrite: target.force) {
            reporter.update($0)
        }
        reporter.finish()
        reporter.note("wrote \(target.output): \(summary.metadata.tensors.count) tensors, \(ProgressReporter.bytes(summary.outputBytes))")
    }
}
