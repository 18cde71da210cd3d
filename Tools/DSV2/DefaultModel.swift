import Foundation

/// The model `generate` and `chat` use when no `--model` is given: tiny-dsv2 (an 8.6M-parameter
/// DeepSeek-V2 trained on English text), converted by `scripts/make-default-model` into
/// `Tools/dsv2/Resources/tiny-dsv2.dsv2` and shipped as a SwiftPM resource of the `dsv2`
/// executable.
///
/// SwiftPM's generated `Bundle.module` accessor traps when the bundle is missing, so the file is
/// looked up by hand: first in the resource bundle next to the executable (the built `dsv2`),
/// then in the source tree this file was compiled from (a binary run from a checkout whose bundle
/// was not copied along, or a package that depends on this one and has no such bundle).
/// `$DSV2_DEFAULT_MODEL` overrides both. `Model.openDefault()` opens it.
public enum DefaultModel {
    public static let fileName = "tiny-dsv2.dsv2"

    /// `Tools/dsv2/Resources` of the checkout this file was compiled in.
    static let sourceTreeResources = URL(fileURLWithPath: #filePath)   // <repo>/Tools/DSV2/DefaultModel.swift
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("dsv2").appendingPathComponent("Resources")

    /// Names of the SwiftPM resource bundle of target `dsv2` of package `dsv2` (Linux, macOS).
    static let bundleNames = ["dsv2_dsv2.resources", "dsv2_dsv2.bundle"]

    /// Every place looked at, in order.
    static func candidates() -> [URL] {
        var result: [URL] = []
        if let executable = executableURL() {
            let dir = executable.deletingLastPathComponent()
            for bundle in bundleNames {
                let root = dir.appendingPathComponent(bundle)
                result.append(root.appendingPathComponent("Resources").appendingPathComponent(fileName))
                result.append(root.appendingPathComponent("Contents/Resources/Resources").appendingPathComponent(fileName))
            }
        }
        result.append(sourceTreeResources.appendingPathComponent(fileName))
        return result
    }

    /// The default model file, or an error listing where it was looked for.
    /// `$DSV2_DEFAULT_MODEL`, when set, is used as it is (no fallback behind it).
    public static func locate() throws -> URL {
        if let override = ProcessInfo.processInfo.environment["DSV2_DEFAULT_MODEL"], !override.isEmpty {
            return URL(fileURLWithPath: override)
        }
        let places = candidates()
        if let found = places.first(where: { FileManager.default.isReadableFile(atPath: $0.path) }) { return found }
        throw DefaultModelError.missing(searched: places.map(\.path))
    }

    /// The running executable, symlinks resolved (so a symlinked `dsv2` still finds its bundle).
    private static func executableURL() -> URL? {
        if let path = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            return URL(fileURLWithPath: path)
        }
        return Bundle.main.executableURL?.resolvingSymlinksInPath()
    }
}

public enum DefaultModelError: Error, CustomStringConvertible {
    case missing(searched: [String])

    public var description: String {
        switch self {
        case let .missing(searched):
            return """
            the embedded default model (\(DefaultModel.fileName)) was not found; looked in:
            \(searched.map { "  " + $0 }.joined(separator: "\n"))
            Rebuild with `swift build -c release --product dsv2` (it ships the file as a resource),
            regenerate it with scripts/make-default-model, or pass --model <hf-folder|model.dsv2>.
            """
        }
    }
}
