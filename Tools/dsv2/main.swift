import DSV2CLI

await DSV2Command.runCommandLine()
