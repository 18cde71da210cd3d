import ArgumentParser

// Scaffold: replaced by the real command.
struct GenerateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "generate", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 generate is not built yet") }
}
