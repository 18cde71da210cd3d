import ArgumentParser

/// `dsv2 bench …`: benchmarks with JSON output (speed is checked here, never in unit tests).
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks: whole model, kernels, reference layer, tokenizer.",
        subcommands: [BenchModelCommand.self, BenchKernelsCommand.self,
                      BenchReferenceCommand.self, BenchTokenizerCommand.self, BenchServeCommand.self],
        defaultSubcommand: BenchModelCommand.self
    )
}
