import ArgumentParser
import Foundation
import DSV2Container

/// `dsv2 verify`: structure and every checksum; exit code 0 only if all is well.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a .dsv2 container's structure, every checksum, finite weights and the tensors against its config (exit code 0 only if all is well).")

    @Argument(help: "The container.")
    var container: String

    @Option(help: "Tensors checked in parallel.")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Flag(help: "Print only problems.")
    var quiet = false

    func run() throws {
        let reader: ContainerReader
        do {
            reader = try ContainerReader(path: container)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
        let reporter = ProgressReporter(quiet: quiet)
        let start = Date()
        let total = reader.metadata.tensors.reduce(0) { $0 + $1.rawSize }
        var problems = reader.verify(threads: max(1, threads)) { done, count, bytes, totalBytes in
            reporter.update(done: bytes, total: totalBytes, items: done, itemCount: count, label: "",
                            elapsed: Date().timeIntervalSince(start), force: done == count)
        }
        reporter.finish()
        do { try reader.checkAgainstConfig() } catch let error as ContainerError { problems.append(error) } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitCode(1)
        }
        for problem in problems { FileHandle.standardError.write(Data("\(problem)\n".utf8)) }
        if !problems.isEmpty {
            FileHandle.standardError.write(Data("\(container): \(problems.count) problem(s)\n".utf8))
            throw ExitCode(1)
        }
        if !quiet {
            print("\(container): OK (\(reader.metadata.tensors.count) tensors, \(reader.metadata.files.count) files, "
                  + "\(ProgressReporter.bytes(total)) decoded, \(String(format: "%.1f", Date().timeIntervalSince(start))) s)")
        }
    }
}
