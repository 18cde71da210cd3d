import CFuzzDriver
import DSV2Fuzz
import Foundation

/// The libFuzzer executable (built only by scripts/fuzz, with -sanitize=fuzzer,address):
/// `DSV2_FUZZ_TARGET=<target> dsv2-fuzz [libFuzzer flags] [corpus folders]`, target one of
/// `FuzzTargets.all`.
@main
enum FuzzMain {
    static func main() {
        let name = ProcessInfo.processInfo.environment["DSV2_FUZZ_TARGET"] ?? ""
        guard FuzzTargets.all[name] != nil else {
            FileHandle.standardError.write(Data("DSV2_FUZZ_TARGET must be one of \(FuzzTargets.names), not \"\(name)\"\n".utf8))
            exit(2)
        }
        target = name
        var argc = CommandLine.argc
        var argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>? = CommandLine.unsafeArgv
        exit(LLVMFuzzerRunDriver(&argc, &argv) { bytes, size in
            // An error is the parser doing its job; only a crash, a hang or runaway memory is a finding.
            _ = FuzzTargets.run(FuzzMain.target, bytes.map { Data(bytes: $0, count: size) } ?? Data())
            return 0
        })
    }

    nonisolated(unsafe) static var target = ""
}
