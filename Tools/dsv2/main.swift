import DSV2CLI

// The embedded default model ships as a resource of this target (Resources/tiny-dsv2.dsv2);
// `DefaultModel` (in the umbrella library DSV2) finds it.
await DSV2Command.runCommandLine()
