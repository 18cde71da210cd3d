import ArgumentParser

// Scaffold: replaced by the real command.
struct BenchTokenizerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenizer", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 bench tokenizer is not built yet") }
}
