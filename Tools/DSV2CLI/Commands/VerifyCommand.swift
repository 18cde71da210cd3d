import ArgumentParser
import Foundation
import DSV2

/// `dsv2 verify`: structure and every checksum; exit code 0 only if all is well.
struct VerifyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a .dsv2 container's structure, every checksum, finite weights and the tensors against its config (exit code 0 only if all is well).")

    @Argument(help: "The container.")
    var container: String

    @OptionGroup var threads: ThreadOptions

    @Flag(name: [.customShort("q"), .long], help: "Print only problems.")
    var quiet = false

    @Flag(name: .long, help: "Print the result as JSON (ok, tensors, files, decoded bytes, seconds, problems).")
    var json = false

    struct Report: Encodable {
        var path: String
        var ok: Bool
        var tensors: Int
        var files: Int
        var decodedBytes: Int
        var seconds: Double
        var problems: [String]
    }

    func run() throws {
        try FileKind.requireRegularFile(container)
        let start = Date()
        let reader: ContainerReader
        do {
            reader = try ContainerReader(path: container)
        } catch {
            // The file is there but not a sound container: that is what verify reports (status 1).
            try finish(Report(path: container, ok: false, tensors: 0, files: 0, decodedBytes: 0,
                              seconds: Date().timeIntervalSince(start), problems: ["\(error)"]))
            return
        }
        let reporter = ProgressReporter(quiet: quiet || json)
        let total = reader.metadata.tensors.reduce(0) { $0 + $1.rawSize }
        var problems: [Error] = reader.verify(threads: threads.count) { done, count, bytes, totalBytes in
            reporter.update(done: bytes, total: totalBytes, items: done, itemCount: count, label: "",
                            elapsed: Date().timeIntervalSince(start), force: done == count)
        }
        reporter.finish()
        // The tensor table against the embedded config.json (every expected tensor, no other).
        do { try reader.checkAgainstConfig() } catch { problems.append(error) }
        try finish(Report(path: container, ok: problems.isEmpty, tensors: reader.metadata.tensors.count,
                          files: reader.metadata.files.count, decodedBytes: total,
                          seconds: Date().timeIntervalSince(start), problems: problems.map { "\($0)" }))
    }

    /// Prints the result; a container with problems ends with status 1.
    private func finish(_ report: Report) throws {
        if json {
            try JSONOutput.print(report, pretty: true)
        } else {
            for problem in report.problems { Terminal.writeError(problem + "\n") }
            if !report.ok {
                Terminal.writeError("\(container): \(report.problems.count) problem(s)\n")
            } else if !quiet {
                Terminal.write("\(container): OK (\(report.tensors) tensors, \(report.files) files, "
                               + "\(ProgressReporter.bytes(report.decodedBytes)) decoded, \(String(format: "%.1f", report.seconds)) s)\n")
            }
        }
        if !report.ok { throw ExitCode(ExitStatus.failure) }
    }
}
