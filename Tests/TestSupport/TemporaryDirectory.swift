import Foundation

/// A fresh folder under the system temporary directory, removed with its contents when the
/// object goes away.
public final class TemporaryDirectory {
    public let url: URL

    /// `prefix` starts the folder's name (helps to tell leftovers apart).
    public init(prefix: String = "dsv2-test") {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)")
        // A test cannot go on without its scratch folder; this is not user input.
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    deinit { try? FileManager.default.removeItem(at: url) }

    /// The URL of `name` inside the folder.
    public func file(_ name: String) -> URL { url.appendingPathComponent(name) }
}
