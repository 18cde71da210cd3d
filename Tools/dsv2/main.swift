import Foundation
import DSV2CLI

// The embedded default model ships as a resource of this target (Resources/tiny-dsv2.dsv2).
// DefaultModel finds the resource bundle next to the executable; this source-tree folder is the
// fallback for a binary run from a checkout whose bundle was not copied along.
DefaultModel.searchDirectories.append(
    URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Resources"))

await DSV2Command.runCommandLine()
