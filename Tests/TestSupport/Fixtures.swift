import DSV2Core
import DSV2Formats
import Foundation

/// Locates the test fixtures copied into `Tests/Fixtures/` (so a fresh clone tests alone).
public enum Fixtures {
    /// `<repo>/Tests/Fixtures`
    public static let root: URL = {
        URL(fileURLWithPath: #filePath)      // <repo>/Tests/TestSupport/Fixtures.swift
            .deletingLastPathComponent()
            .deletingLastPathComponent()
            .appendingPathComponent("Fixtures")
    }()

    /// The repository root, e.g. to find the built `dsv2` binary.
    public static let repositoryRoot: URL = root.deletingLastPathComponent().deletingLastPathComponent()

    /// The checkpoint fixtures with golden outputs of DeepSeek's original code.
    public static let modelCases = ["lite-fp32-norope", "lite-greedy", "v2-grouped", "tiny-dsv2"]

    public static func url(_ relative: String) -> URL { root.appendingPathComponent(relative) }

    /// The golden tensors of a checkpoint fixture (`<fixture>/golden.safetensors`).
    public static func golden(_ fixture: String) throws -> SafetensorsFile {
        try SafetensorsFile(url: url(fixture).appendingPathComponent("golden.safetensors"))
    }

    /// The release `dsv2` binary built by `make test` (falls back to the debug one).
    public static var dsv2Binary: URL {
        for configuration in ["release", "debug"] {
            let candidate = repositoryRoot.appendingPathComponent(".build/\(configuration)/dsv2")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        }
        return repositoryRoot.appendingPathComponent(".build/release/dsv2")
    }
}

/// Copies a fixture checkpoint folder (config, weights, tokenizer files) to `folder`.
public func copyFixture(_ name: String, to folder: URL) throws {
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let source = Fixtures.url(name)
    for file in ["config.json", "model.safetensors"] + HFCheckpointSource.tokenizerFileNames {
        let from = source.appendingPathComponent(file)
        if FileManager.default.fileExists(atPath: from.path) {
            try FileManager.default.copyItem(at: from, to: folder.appendingPathComponent(file))
        }
    }
}

