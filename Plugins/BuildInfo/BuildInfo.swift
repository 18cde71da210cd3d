import Foundation
import PackagePlugin

/// Embeds the git commit of the checkout in the build: before every build, `scripts/build-info`
/// writes `BuildCommit.swift` (rewritten only when the commit changes, so nothing recompiles
/// otherwise). It reads the repository with the local `git`; no network. Without git or a
/// repository (a source archive) the commit is recorded as unknown.
@main
struct BuildInfoPlugin: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let output = context.pluginWorkDirectoryURL.appendingPathComponent("BuildInfo")
        let script = context.package.directoryURL.appendingPathComponent("scripts/build-info")
        return [.prebuildCommand(displayName: "Record the git commit of \(context.package.displayName)",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: [script.path, context.package.directoryURL.path, output.path],
                                 outputFilesDirectory: output)]
    }
}
