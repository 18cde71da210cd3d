import ArgumentParser
import Foundation
import DSV2Converter
import DSV2Quantized

/// `dsv2 unpack`: compressed container → raw (mmap-ready) container, same tensor types.
struct UnpackCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unpack",
        abstract: "Decompress a .dsv2 container into a raw, mmap-ready one (same tensor types and bytes).")

    @Argument(help: "The compressed container.")
    var container: String

    @Option(name: .shortAndLong, help: "The raw container to write.")
    var output: String

    @Option(help: "Tensors decoded in parallel.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Overwrite the output if it exists.")
    var force = false

    @Flag(help: "No progress output.")
    var quiet = false

    func run() throws {
        let destination = URL(fileURLWithPath: output)
        if !force, FileManager.default.fileExists(atPath: destination.path) {
            throw ContainerError.exists(path: destination.path)
        }
        let reader = try ContainerReader(path: container)
        let reporter = ProgressReporter(quiet: quiet)
        InterruptCleanup.install(removing: ContainerWriter.temporaryPath(for: destination))
        let summary = try Converter.unpack(reader, to: destination, threads: max(1, threads), overwrite: force
        ) { p in
            reporter.update(done: p.inputBytesDone, total: p.inputBytesTotal, items: p.tensorsDone, itemCount: p.tensorCount,
                            label: p.tensorName, elapsed: p.elapsedSeconds, force: p.tensorsDone == p.tensorCount)
        }
        reporter.finish()
        reporter.note("wrote \(output): \(summary.metadata.tensors.count) tensors, \(ProgressReporter.bytes(summary.outputBytes))")
    }
}
