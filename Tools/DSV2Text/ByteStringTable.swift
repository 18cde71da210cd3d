import Foundation

/// Byte string -> id map without per-lookup allocation (keys live in one arena). Loading the
/// 100k-entry vocabulary and its merges through Swift dictionaries keyed by `[UInt8]` or `String`
/// took most of the load time (and `String` keys would compare by canonical equivalence).
struct ByteStringTable {
    private var slots: [Int32]
    private var hashes: [UInt64] = []
    private var offsets: [Int32] = []
    private var lengths: [Int32] = []
    private var values: [Int32] = []
    private var arena: [UInt8] = []
    private var mask: Int

    init(capacity: Int) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        hashes.reserveCapacity(capacity); offsets.reserveCapacity(capacity)
        lengths.reserveCapacity(capacity); values.reserveCapacity(capacity)
    }

    var count: Int { values.count }

    private func find(_ key: UnsafeBufferPointer<UInt8>, _ hash: UInt64) -> (slot: Int, entry: Int) {
        var i = Int(truncatingIfNeeded: hash) & mask
        return arena.withUnsafeBufferPointer { a in
            while true {
                let e = Int(slots[i])
                if e < 0 { return (i, -1) }
                if hashes[e] == hash && Int(lengths[e]) == key.count
                    && (key.isEmpty || memcmp(a.baseAddress! + Int(offsets[e]), key.baseAddress!, key.count) == 0) {
                    return (i, e)
                }
                i = (i + 1) & mask
            }
        }
    }

    /// Inserts or overwrites; returns the value overwritten.
    @discardableResult
    mutating func insert(_ key: UnsafeBufferPointer<UInt8>, _ value: Int) -> Int? {
        if values.count * 2 >= slots.count { grow() }
        let hash = PieceCache.hash(key)
        let (slot, entry) = find(key, hash)
        if entry >= 0 {
            let previous = Int(values[entry])
            values[entry] = Int32(value)
            return previous
        }
        slots[slot] = Int32(values.count)
        hashes.append(hash); offsets.append(Int32(arena.count)); lengths.append(Int32(key.count))
        values.append(Int32(value))
        arena.append(contentsOf: key)
        return nil
    }

    @discardableResult
    mutating func insert(_ key: [UInt8], _ value: Int) -> Int? { key.withUnsafeBufferPointer { insert($0, value) } }
    @discardableResult
    mutating func insert(utf8 key: String, _ value: Int) -> Int? { insert(Array(key.utf8), value) }

    func lookup(_ key: UnsafeBufferPointer<UInt8>) -> Int? {
        let e = find(key, PieceCache.hash(key)).entry
        return e >= 0 ? Int(values[e]) : nil
    }

    func lookup(_ key: [UInt8]) -> Int? { key.withUnsafeBufferPointer { lookup($0) } }
    func lookup(utf8 key: String) -> Int? { lookup(Array(key.utf8)) }

    private mutating func grow() {
        slots = [Int32](repeating: -1, count: slots.count * 2)
        mask = slots.count - 1
        for e in 0..<values.count {
            var i = Int(truncatingIfNeeded: hashes[e]) & mask
            while slots[i] >= 0 { i = (i + 1) & mask }
            slots[i] = Int32(e)
        }
    }
}
