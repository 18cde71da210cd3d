import CZstd
import DSV2Formats

/// Thin wrappers over libzstd's one-shot API: one independent frame per call.
enum Zstd {
    /// Compresses `count` bytes into a new array (one frame, no content checksum: the container
    /// checksums the decoded tensor with XXH64 itself).
    static func compress(_ source: UnsafeRawPointer, count: Int, level: Int32) -> [UInt8]? {
        let bound = ZSTD_compressBound(count)
        var output = [UInt8](repeating: 0, count: bound)
        let written = output.withUnsafeMutableBytes { out in
            ZSTD_compress(out.baseAddress, bound, source, count, level)
        }
        if ZSTD_isError(written) != 0 { return nil }
        output.removeSubrange(written...)
        return output
    }

    /// Decompresses one frame of `sourceCount` bytes into exactly `capacity` bytes at
    /// `destination`; nil when the frame is corrupt or decodes to another size.
    static func decompress(_ source: UnsafeRawPointer, count sourceCount: Int,
                           into destination: UnsafeMutableRawPointer, capacity: Int) -> String? {
        let result = ZSTD_decompress(destination, capacity, source, sourceCount)
        if ZSTD_isError(result) != 0 { return String(cString: ZSTD_getErrorName(result)) }
        if result != capacity { return "decoded \(result) bytes, expected \(capacity)" }
        return nil
    }

    static var versionString: String { String(cString: ZSTD_versionString()) }
}

/// Byte grouping ("planes") for float tensors: byte k of every element goes to plane k. The
/// high-byte plane (sign, exponent) compresses well; the low-byte planes are near-random.
enum BytePlanes {
    /// `count` bytes of `elementSize`-byte elements → `elementSize` planes of `count / elementSize`.
    static func split(_ source: UnsafeRawPointer, count: Int, elementSize: Int, into planes: UnsafeMutableRawPointer) {
        let n = count / elementSize
        let input = source.assumingMemoryBound(to: UInt8.self)
        let out = planes.assumingMemoryBound(to: UInt8.self)
        if elementSize == 2 {
            let lo = out, hi = out + n
            for i in 0..<n { lo[i] = input[2 * i]; hi[i] = input[2 * i + 1] }
            return
        }
        for k in 0..<elementSize {
            let plane = out + k * n
            for i in 0..<n { plane[i] = input[elementSize * i + k] }
        }
    }

    /// The inverse of `split`.
    static func merge(_ planes: UnsafeRawPointer, count: Int, elementSize: Int, into destination: UnsafeMutableRawPointer) {
        let n = count / elementSize
        let input = planes.assumingMemoryBound(to: UInt8.self)
        let out = destination.assumingMemoryBound(to: UInt8.self)
        if elementSize == 2 {
            let lo = input, hi = input + n
            for i in 0..<n { out[2 * i] = lo[i]; out[2 * i + 1] = hi[i] }
            return
        }
        for k in 0..<elementSize {
            let plane = input + k * n
            for i in 0..<n { out[elementSize * i + k] = plane[i] }
        }
    }
}
