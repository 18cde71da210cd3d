import ArgumentParser
import DSV2

/// `dsv2`: the command line of the toolkit. Each subcommand lives in `Commands/`.
public struct DSV2Command: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "dsv2",
        abstract: "Run, convert and check DeepSeek-V2 family models on the CPU.",
        discussion: "Exit status of every command: 0 done, 1 failed (a check broke, not enough memory, a write failed), 2 usage or input error, 130 interrupted.",
        version: BuildInfo.description,
        subcommands: [
            GenerateCommand.self,
            ChatCommand.self,
            TokenizeCommand.self,
            DumpCommand.self,
            CompareCommand.self,
            PerplexityCommand.self,
            ConvertCommand.self,
            ExportCommand.self,
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
