import ArgumentParser

// Scaffold: replaced by the real command.
struct BenchKernelsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "kernels", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 bench kernels is not built yet") }
}
