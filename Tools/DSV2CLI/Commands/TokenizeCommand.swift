import ArgumentParser

// Scaffold: replaced by the real command.
struct TokenizeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "tokenize", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 tokenize is not built yet") }
}
