import ArgumentParser

// Scaffold: replaced by the real command.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "verify", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 verify is not built yet") }
}
