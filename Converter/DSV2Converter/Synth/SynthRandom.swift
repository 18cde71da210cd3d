import Foundation
import DSV2Core
import DSV2Formats
import DSV2Container

/// Counter-based random numbers for synthetic weights: element `i` of a tensor is a pure
/// function of (seed, tensor name, i), so the bytes do not depend on the chunking, the thread
/// count or the order tensors are generated in, and a model cut to fewer layers holds the same
/// weights in the layers it keeps.
///
/// Each element hashes two 32-bit counters (2i, 2i+1) with a keyed variant of the `lowbias32`
/// integer mixer (bijective; 32-bit multiplies vectorise on AVX2) and adds the four 16-bit
/// halves: an Irwin–Hall(4) variable, a cheap approximate normal (exact mean and variance,
/// tails cut at ±3.46σ), which is all random weights need.
public struct SynthRandom: Sendable {
    /// Keys of this tensor's stream (from the seed and the tensor name).
    let key0: UInt32
    let key1: UInt32

    /// Largest element count of one stream: two counters per element must fit in 32 bits.
    public static let maxElements = 1 << 31

    public init(seed: UInt64, name: String) {
        // FNV-1a over the name, then SplitMix64's finaliser with the seed folded in.
        var hash: UInt64 = 0xCBF2_9CE4_8422_2325
        for byte in name.utf8 { hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3 }
        let z = SplitMix64.mix(hash ^ (seed &* SplitMix64.gamma))
        key0 = UInt32(truncatingIfNeeded: z)
        key1 = UInt32(truncatingIfNeeded: z >> 32) | 1
    }

    // Irwin–Hall(4) of 16-bit uniforms: sum in [0, 4·65535], mean 131070,
    // variance 4·(65536² − 1)/12 → standard deviation 37837.23.
    static let mean: Float = 131_070
    static let inverseDeviation: Float = 1 / 37_837.23

    @inline(__always)
    static func mix(_ counter: UInt32, _ key0: UInt32, _ key1: UInt32) -> UInt32 {
        var x = counter ^ key0
        x ^= x >> 16
        x = x &* 0x7FEB_352D
        x ^= x >> 15
        x ^= key1            // key injected after a multiply: different keys are not permutations
        x = x &* 0x846C_A68B
        x ^= x >> 16
        return x
    }

    @inline(__always)
    static func mix(_ counter: SIMD8<UInt32>, _ key0: UInt32, _ key1: UInt32) -> SIMD8<UInt32> {
        var x = counter ^ key0
        x ^= x &>> 16
        x = x &* 0x7FEB_352D
        x ^= x &>> 15
        x ^= key1
        x = x &* 0x846C_A68B
        x ^= x &>> 16
        return x
    }

    /// Element `index` as a float with standard deviation `std` (scalar form of `fillBF16`).
    @inline(__always)
    public func value(_ index: Int, std: Float) -> Float {
        let counter = UInt32(truncatingIfNeeded: index &* 2)
        let h0 = Self.mix(counter, key0, key1), h1 = Self.mix(counter &+ 1, key0, key1)
        let sum = (h0 & 0xFFFF) &+ (h0 >> 16) &+ (h1 & 0xFFFF) &+ (h1 >> 16)
        // int → float through the exponent of 2^23 (sum < 2^23), as the vector path does.
        let asFloat = Float(bitPattern: sum | 0x4B00_0000) - 8_388_608
        return (asFloat - Self.mean) * (std * Self.inverseDeviation)
    }

    /// bf16 bits of `value`, rounded to nearest even (no NaNs occur here).
    @inline(__always)
    static func bf16(_ value: Float) -> UInt16 {
        let bits = value.bitPattern
        return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
    }

    /// Writes elements `range` of the stream as bf16 to `out[range]` (`out` is the whole tensor).
    public func fillBF16(_ out: UnsafeMutablePointer<UInt16>, range: Range<Int>, std: Float) {
        var i = range.lowerBound
        let scale = std * Self.inverseDeviation
        // Scalar head up to an even index, so pairs of elements share one 32-bit store.
        if i % 2 != 0, i < range.upperBound {
            out[i] = Self.bf16(value(i, std: std)); i += 1
        }
        // 16 elements per step: lanes of `even` hold elements i, i+2, …, lanes of `odd` the ones
        // after them, so one 32-bit lane stores an (even, odd) bf16 pair with no shuffles.
        let laneEven = SIMD8<UInt32>(0, 4, 8, 12, 16, 20, 24, 28)
        let words = UnsafeMutableRawPointer(out)
        while i + 16 <= range.upperBound {
            let base = SIMD8<UInt32>(repeating: UInt32(truncatingIfNeeded: i &* 2)) &+ laneEven
            let even = normals(base, scale: scale)
            let odd = normals(base &+ 2, scale: scale)
            let evenBits = Self.roundToBF16Bits(even) &>> 16
            let oddBits = Self.roundToBF16Bits(odd) & 0xFFFF_0000
            (words + i * 2).storeBytes(of: evenBits | oddBits, as: SIMD8<UInt32>.self)
            i += 16
        }
        while i < range.upperBound {
            out[i] = Self.bf16(value(i, std: std)); i += 1
        }
    }

    /// Eight normals (as float bit patterns) for the counters `counter` and `counter + 1`.
    @inline(__always)
    private func normals(_ counter: SIMD8<UInt32>, scale: Float) -> SIMD8<Float> {
        let h0 = Self.mix(counter, key0, key1)
        let h1 = Self.mix(counter &+ 1, key0, key1)
        let sum = (h0 & 0xFFFF) &+ (h0 &>> 16) &+ (h1 & 0xFFFF) &+ (h1 &>> 16)
        let asFloat = unsafeBitCast(sum | 0x4B00_0000, to: SIMD8<Float>.self) - 8_388_608
        return (asFloat - Self.mean) * scale
    }

    @inline(__always)
    private static func roundToBF16Bits(_ value: SIMD8<Float>) -> SIMD8<UInt32> {
        let bits = unsafeBitCast(value, to: SIMD8<UInt32>.self)
        return bits &+ 0x7FFF &+ ((bits &>> 16) & 1)
    }
}
