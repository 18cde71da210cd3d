import ArgumentParser

// Scaffold: replaced by the real command.
struct SynthCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "synth", abstract: "(not built yet)")
    func run() async throws { throw ValidationError("dsv2 synth is not built yet") }
}
