import ArgumentParser

// Scaffold: replaced by the real command.
struct BenchModelCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "model", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 bench model is not built yet") }
}
