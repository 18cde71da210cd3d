import ArgumentParser

// Scaffold: replaced by the real command.
struct BenchReferenceCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "reference", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 bench reference is not built yet") }
}
