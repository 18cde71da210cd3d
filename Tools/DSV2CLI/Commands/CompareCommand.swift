import ArgumentParser

// Scaffold: replaced by the real command.
struct CompareCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "compare", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 compare is not built yet") }
}
