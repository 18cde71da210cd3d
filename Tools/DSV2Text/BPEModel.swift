/// Byte-level BPE (the `model` of tokenizer.json, type `BPE`).
///
/// A piece's UTF-8 bytes start as one symbol per byte (the vocabulary id of its alphabet
/// character); then the adjacent pair with the lowest merge rank is merged, leftmost first, until
/// no pair has a merge. That is exactly what HF's priority queue computes. Short pieces use a
/// plain scan (fastest below ~64 symbols); long ones a heap over a linked list.
final class BPEModel {
    /// Vocabulary id of each byte's alphabet character (-1 when the vocabulary lacks it).
    let byteIds: [Int32]
    let merges: MergeTable
    /// Whole-piece lookups for `ignore_merges` (nil when the flag is off).
    let wholeTokens: [[UInt8]: UInt32]?
    let unkId: UInt32?
    let fuseUnk: Bool

    init(byteIds: [Int32], merges: MergeTable, wholeTokens: [[UInt8]: UInt32]?, unkId: UInt32?, fuseUnk: Bool) {
        self.byteIds = byteIds
        self.merges = merges
        self.wholeTokens = wholeTokens
        self.unkId = unkId
        self.fuseUnk = fuseUnk
    }

    /// Appends the ids of one pre-tokenized piece.
    func tokenize(_ bytes: UnsafeBufferPointer<UInt8>, into out: inout [UInt32], scratch: inout BPEScratch) {
        if let wholeTokens, let id = wholeTokens[Array(bytes)] {
            out.append(id)
            return
        }
        var symbols = scratch.symbols
        symbols.removeAll(keepingCapacity: true)
        var lastWasUnk = false
        for b in bytes {
            let id = byteIds[Int(b)]
            if id >= 0 {
                symbols.append(UInt32(id)); lastWasUnk = false
            } else if let unkId {
                if !(fuseUnk && lastWasUnk) { symbols.append(unkId) }
                lastWasUnk = true
            }
        }
        if symbols.count > 64 {
            mergeWithHeap(&symbols, scratch: &scratch)
        } else if symbols.count > 1 {
            mergeByScanning(&symbols)
        }
        out.append(contentsOf: symbols)
        scratch.symbols = symbols
    }

    private func mergeByScanning(_ symbols: inout [UInt32]) {
        var count = symbols.count
        symbols.withUnsafeMutableBufferPointer { sym in
            // rank[i] = merge of (sym[i], sym[i+1]); at most 64 symbols here.
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: count) { rank in
                for i in 0..<(count - 1) { rank[i] = merges.lookup(sym[i], sym[i + 1]) }
                while count > 1 {
                    var best = MergeTable.none
                    var at = -1
                    for i in 0..<(count - 1) where rank[i] < best { best = rank[i]; at = i }
                    if at < 0 { break }
                    sym[at] = UInt32(truncatingIfNeeded: best)
                    // Remove sym[at + 1].
                    var j = at + 1
                    while j < count - 1 { sym[j] = sym[j + 1]; rank[j] = rank[j + 1]; j += 1 }
                    count -= 1
                    if at > 0 { rank[at - 1] = merges.lookup(sym[at - 1], sym[at]) }
                    if at < count - 1 { rank[at] = merges.lookup(sym[at], sym[at + 1]) }
                }
            }
        }
        symbols.removeSubrange(count...)
    }

    /// HF's algorithm: a min-heap of (rank, position) over a doubly linked symbol list; stale
    /// entries are recognised on pop and skipped.
    private func mergeWithHeap(_ symbols: inout [UInt32], scratch: inout BPEScratch) {
        let n = symbols.count
        var prev = [Int](0..<n).map { $0 - 1 }
        var next = [Int](0..<n).map { $0 + 1 == n ? -1 : $0 + 1 }
        var alive = [Bool](repeating: true, count: n)
        var heap = MergeHeap()
        for i in 0..<(n - 1) {
            let m = merges.lookup(symbols[i], symbols[i + 1])
            if m != MergeTable.none { heap.push(key: m >> 32, pos: i, newId: UInt32(truncatingIfNeeded: m)) }
        }
        while let top = heap.pop() {
            let pos = top.pos
            guard alive[pos], next[pos] >= 0 else { continue }
            let right = next[pos]
            let m = merges.lookup(symbols[pos], symbols[right])
            guard m != MergeTable.none, UInt32(truncatingIfNeeded: m) == top.newId else { continue }
            symbols[pos] = top.newId
            alive[right] = false
            next[pos] = next[right]
            if next[right] >= 0 { prev[next[right]] = pos }
            if prev[pos] >= 0 {
                let p = prev[pos]
                let mm = merges.lookup(symbols[p], symbols[pos])
                if mm != MergeTable.none { heap.push(key: mm >> 32, pos: p, newId: UInt32(truncatingIfNeeded: mm)) }
            }
            if next[pos] >= 0 {
                let mm = merges.lookup(symbols[pos], symbols[next[pos]])
                if mm != MergeTable.none { heap.push(key: mm >> 32, pos: pos, newId: UInt32(truncatingIfNeeded: mm)) }
            }
        }
        var out: [UInt32] = []
        out.reserveCapacity(n)
        var i = 0
        while i >= 0 && i < n { out.append(symbols[i]); i = next[i] }
        symbols = out
    }
}

/// Reusable buffers of one encode call.
struct BPEScratch {
    var symbols: [UInt32] = []
}

/// Min-heap ordered by (rank, position): lowest rank first, leftmost among equal ranks.
struct MergeHeap {
    struct Entry { var key: UInt64; var pos: Int; var newId: UInt32 }
    private var items: [Entry] = []

    private static func less(_ a: Entry, _ b: Entry) -> Bool { a.key != b.key ? a.key < b.key : a.pos < b.pos }

    mutating func push(key: UInt64, pos: Int, newId: UInt32) {
        items.append(Entry(key: key, pos: pos, newId: newId))
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if MergeHeap.less(items[i], items[parent]) { items.swapAt(i, parent); i = parent } else { break }
        }
    }

    mutating func pop() -> Entry? {
        guard !items.isEmpty else { return nil }
        let top = items[0]
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && MergeHeap.less(items[l], items[m]) { m = l }
                if r < items.count && MergeHeap.less(items[r], items[m]) { m = r }
                if m == i { break }
                items.swapAt(i, m); i = m
            }
        }
        return top
    }
}

/// Open-addressing hash table: pair (left id, right id) -> (rank << 32 | merged id).
/// `none` (all ones) means "no merge", so a smaller value is always a better merge.
struct MergeTable {
    static let none = UInt64.max
    private var keys: [UInt64]
    private var values: [UInt64]
    private let mask: Int
    let count: Int

    init(_ entries: [(left: UInt32, right: UInt32, rank: UInt32, merged: UInt32)]) {
        var capacity = 16
        while capacity < entries.count * 2 { capacity <<= 1 }
        keys = [UInt64](repeating: UInt64.max, count: capacity)
        values = [UInt64](repeating: MergeTable.none, count: capacity)
        mask = capacity - 1
        var stored = 0
        for e in entries {
            let key = UInt64(e.left) << 32 | UInt64(e.right)
            var i = MergeTable.slot(key) & mask
            while keys[i] != UInt64.max && keys[i] != key { i = (i + 1) & mask }
            // A pair listed twice keeps its last rank, like HF's HashMap collected in order.
            if keys[i] != key { stored += 1 }
            keys[i] = key
            values[i] = UInt64(e.rank) << 32 | UInt64(e.merged)
        }
        count = stored
    }

    @inline(__always)
    private static func slot(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29)
    }

    @inline(__always)
    func lookup(_ left: UInt32, _ right: UInt32) -> UInt64 {
        let key = UInt64(left) << 32 | UInt64(right)
        return keys.withUnsafeBufferPointer { k in
            var i = MergeTable.slot(key) & mask
            while true {
                let stored = k[i]
                if stored == key { return values.withUnsafeBufferPointer { $0[i] } }
                if stored == UInt64.max { return MergeTable.none }
                i = (i + 1) & mask
            }
        }
    }
}
