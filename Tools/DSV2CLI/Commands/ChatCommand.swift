import ArgumentParser

// Scaffold: replaced by the real command.
struct ChatCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "chat", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 chat is not built yet") }
}
