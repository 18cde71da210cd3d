import ArgumentParser

/// `dsv2`: the command line of the toolkit. Each subcommand lives in `Commands/`.
public struct DSV2Command: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dsv2",
        abstract: "Run, convert and check DeepSeek-V2 family models on the CPU.",
        subcommands: [
            GenerateCommand.self,
            ChatCommand.self,
            TokenizeCommand.self,
            DumpCommand.self,
            CompareCommand.self,
            PerplexityCommand.self,
            ConvertCommand.self,
            InspectCommand.self,
            VerifyCommand.self,
            UnpackCommand.self,
            SynthCommand.self,
            BenchCommand.self,
            ServeCommand.self,
        ]
    )

    public init() {}
}
