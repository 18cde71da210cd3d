import Foundation
import ArgumentParser
import DSV2CLI

// The embedded default model ships as a resource of this target (Resources/tiny-dsv2.dsv2).
// DefaultModel finds the resource bundle next to the executable; this source-tree folder is the
// fallback for a binary run from a checkout whose bundle was not copied along.
DefaultModel.searchDirectories.append(
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources"))

// Parse and dispatch by hand: in top-level code `DSV2Command.main()` resolves to the synchronous
// overload, which never calls an async subcommand's `run()` (it prints the help instead).
do {
    var command = try DSV2Command.parseAsRoot()
    if var asyncCommand = command as? AsyncParsableCommand {
        try await asyncCommand.run()
    } else {
        try command.run()
    }
} catch {
    DSV2Command.exit(withError: error)
}
