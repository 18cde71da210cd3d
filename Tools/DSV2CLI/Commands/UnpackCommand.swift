import ArgumentParser

// Scaffold: replaced by the real command.
struct UnpackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "unpack", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 unpack is not built yet") }
}
