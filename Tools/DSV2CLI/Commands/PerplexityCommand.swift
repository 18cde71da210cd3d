import ArgumentParser

// Scaffold: replaced by the real command.
struct PerplexityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "perplexity", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 perplexity is not built yet") }
}
