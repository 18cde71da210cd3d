import ArgumentParser
import DSV2Container
import DSV2Converter
import Foundation

/// The output options of the commands that write a container (`convert`, `unpack`).
struct ContainerOutputOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The container to write.")
    var output: String

    @Flag(help: "Overwrite the output if it exists.")
    var force = false

    @Flag(help: "No progress output.")
    var quiet = false

    /// The output URL, refused when it exists and --force is not given. From here on an
    /// interrupt removes the temporary file the writer fills (the target is only renamed into
    /// place at the end).
    func prepareDestination() throws -> URL {
        let destination = URL(fileURLWithPath: output)
        if !force, FileManager.default.fileExists(atPath: destination.path) {
            throw ContainerError.exists(path: destination.path)
        }
        InterruptCleanup.install(removing: ContainerWriter.temporaryPath(for: destination))
        return destination
    }
}

extension ProgressReporter {
    /// Shows a conversion's progress: input bytes, tensors done, the tensor at work.
    func update(_ p: ConversionProgress) {
        update(done: p.inputBytesDone, total: p.inputBytesTotal, items: p.tensorsDone, itemCount: p.tensorCount,
               label: p.tensorName, elapsed: p.elapsedSeconds, force: p.tensorsDone == p.tensorCount)
    }
}
