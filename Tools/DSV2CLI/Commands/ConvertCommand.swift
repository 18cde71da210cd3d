import ArgumentParser

// Scaffold: replaced by the real command.
struct ConvertCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "convert", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 convert is not built yet") }
}
