import ArgumentParser

extension DSV2Command {
    /// Parses the command line and runs the chosen command, awaiting its async `run()`.
    ///
    /// `await DSV2Command.main()` in top-level code resolves to the synchronous
    /// `ParsableCommand.main()`, which calls the subcommands' default synchronous `run()` — that
    /// only prints help and exits 0. This entry point always takes the async path.
    public static func runCommandLine() async {
        BLASCoreSelection.reexecIfNeeded()
        do {
            var command = try parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}
