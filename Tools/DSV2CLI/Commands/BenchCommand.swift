import ArgumentParser

// Scaffold: replaced by the real command.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "bench", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 bench is not built yet") }
}
