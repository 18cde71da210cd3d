import Foundation

/// A fresh folder under the system temp dir, removed when the object goes away.
final class TemporaryDirectory {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory.appendingPathComponent("dsv2-ref-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(at: url) }

    func file(_ name: String) -> URL { url.appendingPathComponent(name) }

    /// Writes a raw safetensors file from a header JSON string and data bytes.
    func writeSafetensors(_ name: String, header: String, data: [UInt8]) throws -> URL {
        var bytes = [UInt8]()
        let json = Array(header.utf8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json + data
        let url = file(name)
        try Data(bytes).write(to: url)
        return url
    }
}
