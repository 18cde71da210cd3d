/// A zero-filled heap buffer aligned for SIMD loads: the storage of quantized matrices,
/// activations, workspaces and caches, and the destination of decompressed or converted tensors.
/// Class so that a `QuantizedMatrix`, `PreparedActivations` or `StoredTensor` can keep it alive
/// as its `owner`.
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public let alignment: Int

    /// `alignment` must be a power of two. By default 64 bytes (one cache line, so a 32-byte
    /// vector load never straddles two lines by accident), or a page (4096) from 1 MiB on, so
    /// large tensors start on a page boundary.
    public init(byteCount: Int, alignment: Int? = nil) {
        let alignment = alignment ?? (byteCount >= 1 << 20 ? 4096 : 64)
        precondition(byteCount >= 0 && alignment > 0 && alignment & (alignment - 1) == 0,
                     "AlignedBuffer: bad size \(byteCount) or alignment \(alignment)")
        self.byteCount = byteCount
        self.alignment = alignment
        // Never allocate 0 bytes: a valid, unique pointer keeps the callers simple.
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, alignment), alignment: alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, alignment))
    }

    deinit { pointer.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: pointer, count: byteCount) }
    public var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: pointer, count: byteCount) }
}
