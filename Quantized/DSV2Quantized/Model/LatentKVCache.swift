import DSV2Formats
import DSV2Kernels
/// Element type of the latent KV cache.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// 2 bytes per value (the default: 576 values → 1152 B per token per layer for the real shapes).
    case f16
    /// 2 bytes per value, 8 significant bits instead of f16's 11: on a CPU with AVX-512 BF16 the
    /// attention products run on vdpbf16ps, twice the multiply-adds per instruction of f16's FMA
    /// (the query and the attention weights are rounded to bf16 too; docs/KERNELS.md).
    case bf16
    /// 4 bytes per value: exact fp32 attention inputs (accuracy checks).
    case f32

    var weightType: WeightType {
        switch self {
        case .f16: return .f16
        case .bf16: return .bf16
        case .f32: return .f32
        }
    }
    public var bytesPerValue: Int { self == .f32 ? 4 : 2 }
}

/// The compressed MLA cache of one layer (paper section 2.1.2): per token the normalised latent
/// c_KV (kv_lora_rank) and the rotated shared key k^R (qk_rope_head_dim), as one row
/// [c_KV | k^R] of `width` values. Rows are stored in the `KVCacheType`; the capacity doubles
/// when full (amortised, so the decode path allocates only when the context outgrows it).
final class LatentKVCache {
    let width: Int
    let type: KVCacheType
    private(set) var count = 0
    private(set) var capacity: Int
    private var storage: AlignedBuffer

    init(width: Int, type: KVCacheType, capacity: Int) {
        self.width = width
        self.type = type
        self.capacity = max(1, capacity)
        storage = AlignedBuffer(byteCount: self.capacity * width * type.bytesPerValue)
    }

    var rowBytes: Int { width * type.bytesPerValue }
    var base: UnsafeRawPointer { UnsafeRawPointer(storage.pointer) }
    var allocatedBytes: Int { storage.byteCount }

    /// The capacity a cache of `capacity` rows grows to (doubling) to hold `needed` rows.
    static func capacity(from capacity: Int, toHold needed: Int) -> Int {
        var grown = max(1, capacity)
        while grown < needed { grown *= 2 }
        return grown
    }

    /// Makes room for `needed` rows in total (keeps the cached ones).
    func reserve(_ needed: Int) {
        guard needed > capacity else { return }
        let newCapacity = Self.capacity(from: capacity, toHold: needed)
        let bigger = AlignedBuffer(byteCount: newCapacity * rowBytes)
        bigger.pointer.copyMemory(from: storage.pointer, byteCount: count * rowBytes)
        storage = bigger
        capacity = newCapacity
    }

    /// Writes row `row` (must be < capacity) from `width` floats; rows ≥ `count` become visible
    /// with `commit`.
    func write(row: Int, from values: UnsafePointer<Float>) {
        precondition(row < capacity, "LatentKVCache: row \(row) beyond capacity \(capacity)")
        let destination = storage.pointer + row * rowBytes
        switch type {
        case .f16:
            let out = destination.assumingMemoryBound(to: Float16.self)
            for i in 0..<width { out[i] = Float16(values[i]) }
        case .bf16:
            let out = destination.assumingMemoryBound(to: UInt16.self)
            for i in 0..<width { out[i] = ScalarQuantization.bfloat16Bits(values[i]) }
        case .f32:
            destination.copyMemory(from: values, byteCount: width * 4)
        }
    }

    func commit(_ rows: Int) { count = rows }

    func removeAll() { count = 0 }

    func truncate(to newCount: Int) { count = min(count, newCount) }
}
