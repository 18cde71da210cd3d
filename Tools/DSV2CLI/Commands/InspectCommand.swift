import ArgumentParser

// Scaffold: replaced by the real command.
struct InspectCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 inspect is not built yet") }
}
