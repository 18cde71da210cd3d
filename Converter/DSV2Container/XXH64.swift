import CXXH64
import DSV2Formats
/// XXH64 (xxHash, 64-bit, by Yann Collet; algorithm as specified in xxHash's
/// doc/xxhash_spec.md), the container's checksum. Written here from the specification; tested
/// against the reference test vectors and the content checksums of zstd frames.
public struct XXH64 {
    static let prime1: UInt64 = 0x9E37_79B1_85EB_CA87
    static let prime2: UInt64 = 0xC2B2_AE3D_27D4_EB4F
    static let prime3: UInt64 = 0x1656_67B1_9E37_79F9
    static let prime4: UInt64 = 0x85EB_CA77_C2B2_AE63
    static let prime5: UInt64 = 0x27D4_EB2F_1656_67C5

    /// The hash of `count` bytes at `data`.
    public static func hash(_ data: UnsafeRawPointer?, count: Int, seed: UInt64 = 0) -> UInt64 {
        var hasher = XXH64(seed: seed)
        hasher.update(data, count: count)
        return hasher.finalize()
    }

    public static func hash(_ buffer: UnsafeRawBufferPointer, seed: UInt64 = 0) -> UInt64 {
        hash(buffer.baseAddress, count: buffer.count, seed: seed)
    }

    public static func hash<S: Sequence>(bytes: S, seed: UInt64 = 0) -> UInt64 where S.Element == UInt8 {
        let array = Array(bytes)
        return array.withUnsafeBytes { hash($0, seed: seed) }
    }

    private var v1, v2, v3, v4: UInt64
    private let seed: UInt64
    private var totalLength: UInt64 = 0
    private var buffer: (UInt64, UInt64, UInt64, UInt64) = (0, 0, 0, 0)   // 32 pending bytes
    private var bufferCount = 0

    /// A streaming hasher (feed with `update`, read with `finalize`).
    public init(seed: UInt64 = 0) {
        self.seed = seed
        v1 = seed &+ XXH64.prime1 &+ XXH64.prime2
        v2 = seed &+ XXH64.prime2
        v3 = seed
        v4 = seed &- XXH64.prime1
    }

    @inline(__always) static func round(_ acc: UInt64, _ input: UInt64) -> UInt64 {
        var acc = acc &+ input &* prime2
        acc = (acc << 31) | (acc >> 33)
        return acc &* prime1
    }

    @inline(__always) static func mergeRound(_ acc: UInt64, _ value: UInt64) -> UInt64 {
        let acc = acc ^ round(0, value)
        return acc &* prime1 &+ prime4
    }

    /// Runs the round over `count` whole 32-byte stripes at `p` (in C: CXXH64 says why).
    private mutating func consumeStripes(_ p: UnsafeRawPointer, _ count: Int) {
        var lanes = (v1, v2, v3, v4)
        withUnsafeMutableBytes(of: &lanes) { dsv2_xxh64_stripes($0.baseAddress!.assumingMemoryBound(to: UInt64.self), p, count) }
        (v1, v2, v3, v4) = lanes
    }

    public mutating func update(_ data: UnsafeRawPointer?, count: Int) {
        guard count > 0, let data else { return }
        totalLength &+= UInt64(count)
        var p = data
        var remaining = count
        if bufferCount > 0 {
            let take = min(32 - bufferCount, remaining)
            withUnsafeMutableBytes(of: &buffer) { b in
                (b.baseAddress! + bufferCount).copyMemory(from: p, byteCount: take)
            }
            bufferCount += take
            p += take
            remaining -= take
            if bufferCount < 32 { return }
            var stripe = buffer
            withUnsafeBytes(of: &stripe) { consumeStripes($0.baseAddress!, 1) }
            bufferCount = 0
        }
        if remaining >= 32 {
            consumeStripes(p, remaining / 32)
            p += remaining / 32 * 32
            remaining %= 32
        }
        if remaining > 0 {
            withUnsafeMutableBytes(of: &buffer) { b in b.baseAddress!.copyMemory(from: p, byteCount: remaining) }
            bufferCount = remaining
        }
    }

    public mutating func update(_ buffer: UnsafeRawBufferPointer) { update(buffer.baseAddress, count: buffer.count) }

    public func finalize() -> UInt64 {
        var h: UInt64
        if totalLength >= 32 {
            h = ((v1 << 1) | (v1 >> 63)) &+ ((v2 << 7) | (v2 >> 57))
                &+ ((v3 << 12) | (v3 >> 52)) &+ ((v4 << 18) | (v4 >> 46))
            h = XXH64.mergeRound(h, v1)
            h = XXH64.mergeRound(h, v2)
            h = XXH64.mergeRound(h, v3)
            h = XXH64.mergeRound(h, v4)
        } else {
            h = seed &+ XXH64.prime5
        }
        h &+= totalLength
        var tail = buffer
        let count = bufferCount
        withUnsafeBytes(of: &tail) { raw in
            let p = raw.baseAddress!
            var i = 0
            while i + 8 <= count {
                let k = XXH64.round(0, UInt64(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt64.self)))
                h ^= k
                h = ((h << 27) | (h >> 37)) &* XXH64.prime1 &+ XXH64.prime4
                i += 8
            }
            if i + 4 <= count {
                h ^= UInt64(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: i, as: UInt32.self))) &* XXH64.prime1
                h = ((h << 23) | (h >> 41)) &* XXH64.prime2 &+ XXH64.prime3
                i += 4
            }
            while i < count {
                h ^= UInt64(p.load(fromByteOffset: i, as: UInt8.self)) &* XXH64.prime5
                h = ((h << 11) | (h >> 53)) &* XXH64.prime1
                i += 1
            }
        }
        h ^= h >> 33
        h &*= XXH64.prime2
        h ^= h >> 29
        h &*= XXH64.prime3
        h ^= h >> 32
        return h
    }
}
