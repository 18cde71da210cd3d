/// A zero-filled heap buffer aligned to `alignment` bytes (64 by default: one cache line, so a
/// 32-byte vector load never straddles two lines by accident). Class so that a
/// `QuantizedMatrix` or `PreparedActivations` can keep it alive as its `owner`.
public final class AlignedBuffer: @unchecked Sendable {
    public let pointer: UnsafeMutableRawPointer
    public let byteCount: Int
    public let alignment: Int

    /// `alignment` must be a power of two (64 = cache line, 4096 = page).
    public init(byteCount: Int, alignment: Int = 64) {
        precondition(byteCount >= 0 && alignment > 0 && alignment & (alignment - 1) == 0,
                     "AlignedBuffer: bad size \(byteCount) or alignment \(alignment)")
        self.byteCount = byteCount
        self.alignment = alignment
        // Never allocate 0 bytes: a valid, unique pointer keeps the callers simple.
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, alignment), alignment: alignment)
        pointer.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, alignment))
    }

    deinit { pointer.deallocate() }
}
