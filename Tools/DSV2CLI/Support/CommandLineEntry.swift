import ArgumentParser
import DSV2
import Foundation

extension DSV2Command {
    /// Parses the command line, runs the chosen command and exits with `ExitStatus`: every error,
    /// from the parser or from the command, is printed as `dsv2 <command>: error: …` on stderr.
    ///
    /// `await DSV2Command.main()` in top-level code resolves to the synchronous
    /// `ParsableCommand.main()`, which calls the subcommands' default synchronous `run()` — that
    /// only prints help and exits 0. This entry point always takes the async path.
    public static func runCommandLine() async {
        BLASCoreSelection.reexecIfNeeded()
        let arguments = Array(CommandLine.arguments.dropFirst())
        var name = Self.commandPath(arguments: arguments)
        Signals.install(command: name)
        var command: ParsableCommand
        do {
            command = try parseAsRoot(arguments)
        } catch {
            Foundation.exit(reportParseError(error, command: name))
        }
        name = Self.commandPath(of: type(of: command))
        Signals.install(command: name)
        // Test hook: wait for a signal before running, so the exit status of an interrupted
        // command is tested the same way for every command (the watcher thread exits).
        if ProcessInfo.processInfo.environment["DSV2_TEST_PAUSE"] == "1" {
            Terminal.writeError("paused\n")
            while true { pause() }
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            // `--help` parses to ArgumentParser's help command, whose run() throws the parser's
            // own error: printed (help on stdout) as every parser error.
            if String(reflecting: type(of: error)).hasPrefix("ArgumentParser.") && !(error is ExitCode) && !(error is ValidationError) {
                Foundation.exit(reportParseError(error, command: name))
            }
            if !(error is ExitCode) { ExitStatus.report("\(error)", command: name) }
            Foundation.exit(ExitStatus.code(for: error))
        }
        Foundation.exit(ExitStatus.success)
    }

    /// Prints a parser error and returns its exit status. Help and `--version` go to stdout with
    /// status 0; usage errors (ArgumentParser's 64) become 2, as every usage error.
    static func reportParseError(_ error: Error, command: String) -> Int32 {
        let code = exitCode(for: error)
        var message = fullMessage(for: error)
        if code == .success {
            Terminal.write(message.hasSuffix("\n") ? message : message + "\n")
            return ExitStatus.success
        }
        if message.hasPrefix("Error: ") { message.removeFirst("Error: ".count) }
        ExitStatus.report(message, command: command)
        return code == .validationFailure ? ExitStatus.usage : code.rawValue
    }

    /// `dsv2 bench model` for the type of a parsed command.
    static func commandPath(of type: ParsableCommand.Type) -> String {
        func search(_ node: ParsableCommand.Type, _ path: [String]) -> [String]? {
            let here = path + [node.configuration.commandName ?? "dsv2"]
            if node == type { return here }
            for child in node.configuration.subcommands {
                if let found = search(child, here) { return found }
            }
            return nil
        }
        return (search(DSV2Command.self, []) ?? ["dsv2"]).joined(separator: " ")
    }

    /// The command the arguments name before parsing (for a parse error): the leading words
    /// that are subcommand names.
    static func commandPath(arguments: [String]) -> String {
        var node: ParsableCommand.Type = DSV2Command.self
        var path = ["dsv2"]
        for word in arguments {
            guard let child = node.configuration.subcommands.first(where: { $0.configuration.commandName == word }) else { break }
            path.append(word)
            node = child
        }
        return path.joined(separator: " ")
    }
}
