import ArgumentParser

// Scaffold: replaced by the real command.
struct DumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "dump", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 dump is not built yet") }
}
