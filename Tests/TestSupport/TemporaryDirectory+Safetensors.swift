import Foundation


extension TemporaryDirectory {
    /// Writes a raw safetensors file from a header JSON string and data bytes.
    public func writeSafetensors(_ name: String, header: String, data: [UInt8]) throws -> URL {
        var bytes = [UInt8]()
        let json = Array(header.utf8)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { bytes += $0 }
        bytes += json + data
        let url = file(name)
        try Data(bytes).write(to: url)
        return url
    }
}
