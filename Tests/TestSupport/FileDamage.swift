import Foundation
import XCTest

/// Flips one bit of the byte at `offset`.
public func flipByte(_ url: URL, at offset: Int) throws {
    let handle = try FileHandle(forUpdating: url)
    defer { try? handle.close() }
    try handle.seek(toOffset: UInt64(offset))
    let byte = handle.readData(ofLength: 1)[0]
    try handle.seek(toOffset: UInt64(offset))
    handle.write(Data([byte ^ 0x10]))
}

public func truncateFile(_ url: URL, to size: Int) {
    XCTAssertEqual(truncate(url.path, off_t(size)), 0)
}

/// The error's description, for asserting that it names the file and tensor.
public func describe(_ body: () throws -> Void) -> String? {
    do { try body(); return nil } catch { return "\(error)" }
}
