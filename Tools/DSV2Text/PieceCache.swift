import Foundation

/// Memo of piece bytes -> token ids (most pieces of real text repeat: words, spaces, digits).
///
/// Open addressing over two arenas, so a lookup allocates nothing. Bounded: when it is half full
/// or its arenas grow past a few MB it is simply cleared (HF's cache behaves alike).
struct PieceCache {
    static let maxKeyLength = 512
    private static let slotCount = 1 << 15
    private static let maxEntries = slotCount / 2

    private struct Slot { var hash: UInt64 = 0; var keyStart: Int32 = -1; var keyLength: Int32 = 0
                          var valueStart: Int32 = 0; var valueLength: Int32 = 0 }
    private var slots = [Slot](repeating: Slot(), count: PieceCache.slotCount)
    private var keyArena: [UInt8] = []
    private var valueArena: [UInt32] = []
    private var entries = 0

    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325 ^ UInt64(bytes.count)
        var i = 0
        let n = bytes.count
        let raw = UnsafeRawBufferPointer(bytes)
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01B3
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(bytes[i]) << shift; shift += 8; i += 1 }
        h = (h ^ tail) &* 0x9E37_79B9_7F4A_7C15
        return h ^ (h >> 32)
    }

    /// Appends the cached ids of `bytes` to `out`; false when not cached.
    func lookup(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, into out: inout [UInt32]) -> Bool {
        var i = Int(truncatingIfNeeded: hash) & (PieceCache.slotCount - 1)
        while true {
            let slot = slots[i]
            if slot.keyStart < 0 { return false }
            if slot.hash == hash && Int(slot.keyLength) == bytes.count {
                let same = keyArena.withUnsafeBufferPointer { arena in
                    memcmp(arena.baseAddress! + Int(slot.keyStart), bytes.baseAddress!, bytes.count) == 0
                }
                if same {
                    valueArena.withUnsafeBufferPointer { values in
                        out.append(contentsOf: UnsafeBufferPointer(rebasing: values[Int(slot.valueStart)..<Int(slot.valueStart + slot.valueLength)]))
                    }
                    return true
                }
            }
            i = (i + 1) & (PieceCache.slotCount - 1)
        }
    }

    mutating func insert(_ bytes: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: ArraySlice<UInt32>) {
        if entries >= PieceCache.maxEntries || keyArena.count > 4_000_000 || valueArena.count > 1_000_000 { clear() }
        var i = Int(truncatingIfNeeded: hash) & (PieceCache.slotCount - 1)
        while slots[i].keyStart >= 0 { i = (i + 1) & (PieceCache.slotCount - 1) }
        slots[i] = Slot(hash: hash, keyStart: Int32(keyArena.count), keyLength: Int32(bytes.count),
                        valueStart: Int32(valueArena.count), valueLength: Int32(ids.count))
        keyArena.append(contentsOf: bytes)
        valueArena.append(contentsOf: ids)
        entries += 1
    }

    mutating func clear() {
        for i in slots.indices { slots[i].keyStart = -1 }
        keyArena.removeAll(keepingCapacity: true)
        valueArena.removeAll(keepingCapacity: true)
        entries = 0
    }
}
