import DSV2Formats
/// Activations X [tokens, columns] prepared once for every kernel that multiplies them: the MoE
/// runs many experts (and the attention several projections) on the same input, so quantizing
/// per matrix would repeat the work. Holds, per token:
///   - the floats, zero-padded to a multiple of 32 (f32/f16/bf16 weights), and a copy in
///     even/odd order per group of 16 (bf16 weights unpack two values per 32-bit lane);
///   - int8 quants per block of 32 (`ScalarQuantization.quantizeActivationBlock`, the spec),
///     as Int8 for the AVX2 kernels — natural order (q8) and pair order (q4: per pair of
///     blocks A, B the 32 bytes [A₀…A₁₅, B₀…B₁₅] then [A₁₆…A₃₁, B₁₆…B₃₁], matching the low and
///     high nibbles of the 32 weight bytes of A and B), plus the natural-order quants offset
///     to unsigned bytes (a + 128 = a XOR 0x80, for the AVX-VNNI q8 kernels) — and, for the
///     portable kernels,
///     sign-extended to Int16 in two orders: even/odd per block (a₀, a₂, …, a₃₀, a₁, …, a₃₁;
///     q8 weights, sign-extended from 16-bit lanes by shifts) and "q4 pair order"
///     (below), so the kernels multiply 16-bit lanes without widening the activations again;
///   - the per-block scales da (Float, padded with zeros to a multiple of 8 blocks);
///   - q4 offset corrections, eight Int32 per pair: −8 · Σ a over block A in lane 0 and over
///     block B in lane 4 (zero elsewhere), so the q4 kernels multiply the stored nibbles
///     u ∈ [0, 15] and still get Σ (u − 8)·a exactly (lanes 0–3 / 4–7 are summed per block).
///
/// q4 pair order: a q4 block's 16 bytes, loaded as eight 16-bit lanes, give four nibble vectors
/// by shift and mask: lane i holds values 2i (bits 0–3), 2i+16 (4–7), 2i+1 (8–11), 2i+17 (12–15).
/// Two consecutive blocks A, B are loaded as one 32-byte vector; for each of the four nibble
/// positions k the activations are stored as one 16-lane vector [A's 8 lanes, B's 8 lanes].
/// An odd last block is paired with a zero block.
///
/// Not thread-safe to `load` while kernels read it; reading from many threads is fine. A new
/// per-token plane must also be copied by `copyToken` (EngineWorkspace.swift).
public final class PreparedActivations: @unchecked Sendable {
    public let tokens: Int
    public let columns: Int
    let blocks: Int
    let pairs: Int
    /// Per-token strides in bytes of each plane.
    let floatStride: Int, evenOddStride: Int, q8Stride: Int, q4Stride: Int, int8Stride: Int, scaleStride: Int, correctionStride: Int
    let floats: UnsafeMutableRawPointer
    let evenOdd: UnsafeMutableRawPointer
    let q8: UnsafeMutableRawPointer
    let q4: UnsafeMutableRawPointer
    let q8Int8: UnsafeMutableRawPointer
    let q8Offset: UnsafeMutableRawPointer
    let q4Int8: UnsafeMutableRawPointer
    let scales: UnsafeMutableRawPointer
    let corrections: UnsafeMutableRawPointer
    public let storage: AlignedBuffer

    /// Allocates room for `tokens` vectors of `columns` values (all zero until `load`).
    public init(columns: Int, tokens: Int = 1) {
        precondition(columns > 0 && tokens > 0, "PreparedActivations: empty shape [\(tokens), \(columns)]")
        self.tokens = tokens
        self.columns = columns
        blocks = WeightType.blocksPerRow(columns)
        pairs = (blocks + 1) / 2
        func line(_ n: Int) -> Int { (n + 63) & ~63 }
        floatStride = line(blocks * 32 * 4)
        evenOddStride = floatStride
        q8Stride = line(blocks * 32 * 2)
        q4Stride = line(pairs * 64 * 2)
        int8Stride = line(pairs * 64)
        scaleStride = line(((blocks + 7) / 8) * 8 * 4)
        correctionStride = line(pairs * 8 * 4)
        let perToken = floatStride + evenOddStride + q8Stride + q4Stride + 3 * int8Stride + scaleStride + correctionStride
        storage = AlignedBuffer(byteCount: perToken * tokens)
        floats = storage.pointer
        evenOdd = floats + floatStride * tokens
        q8 = evenOdd + evenOddStride * tokens
        q4 = q8 + q8Stride * tokens
        q8Int8 = q4 + q4Stride * tokens
        q4Int8 = q8Int8 + int8Stride * tokens
        q8Offset = q4Int8 + int8Stride * tokens
        scales = q8Offset + int8Stride * tokens
        corrections = scales + scaleStride * tokens
    }

    /// Prepares `x` [tokens, columns] (row-major).
    public convenience init(_ x: UnsafePointer<Float>, columns: Int, tokens: Int = 1) {
        self.init(columns: columns, tokens: tokens)
        load(x)
    }

    /// Replaces the contents with `x` [tokens, columns] (reuse one object per layer input).
    public func load(_ x: UnsafePointer<Float>) {
        for t in 0..<tokens { loadToken(t, from: x + t * columns) }
    }

    /// Replaces token `token` with the `columns` values at `x`.
    public func loadToken(_ token: Int, from x: UnsafePointer<Float>) {
        precondition(token >= 0 && token < tokens, "PreparedActivations: token \(token) outside 0..<\(tokens)")
        let f = (floats + token * floatStride).assumingMemoryBound(to: Float.self)
        f.update(from: x, count: columns)
        (f + columns).update(repeating: 0, count: blocks * 32 - columns)
        let e = (evenOdd + token * evenOddStride).assumingMemoryBound(to: Float.self)
        for g in 0..<(blocks * 2) {
            for i in 0..<8 {
                e[g * 16 + i] = f[g * 16 + 2 * i]
                e[g * 16 + 8 + i] = f[g * 16 + 2 * i + 1]
            }
        }

        let evenOddQ = (q8 + token * q8Stride).assumingMemoryBound(to: Int16.self)
        let paired = (q4 + token * q4Stride).assumingMemoryBound(to: Int16.self)
        let scale = (scales + token * scaleStride).assumingMemoryBound(to: Float.self)
        let correction = (corrections + token * correctionStride).assumingMemoryBound(to: Int32.self)
        #if arch(x86_64)
        let portable = Kernels.usePortableKernels
        #else
        let portable = true
        #endif
        let natural8 = (q8Int8 + token * int8Stride).assumingMemoryBound(to: Int8.self)
        let paired8 = (q4Int8 + token * int8Stride).assumingMemoryBound(to: Int8.self)
        let offset8 = (q8Offset + token * int8Stride).assumingMemoryBound(to: UInt8.self)
        natural8.update(repeating: 0, count: pairs * 64)
        offset8.update(repeating: 0x80, count: pairs * 64)
        paired8.update(repeating: 0, count: pairs * 64)
        if portable { paired.update(repeating: 0, count: pairs * 64) }
        correction.update(repeating: 0, count: pairs * 8)
        scale.update(repeating: 0, count: scaleStride / 4)

        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { buffer in
            let q = buffer.baseAddress!
            for b in 0..<blocks {
                let start = b * 32
                scale[b] = ScalarQuantization.quantizeActivationBlock(x + start, count: min(32, columns - start), into: q)
                let pair = b / 2, half = b % 2
                var blockSum: Int32 = 0
                for j in 0..<32 { blockSum += Int32(q[j]) }
                correction[pair * 8 + half * 4] = -8 * blockSum
                // AVX2 layouts (Int8).
                (natural8 + start).update(from: q, count: 32)
                for j in 0..<32 { offset8[start + j] = UInt8(bitPattern: q[j]) ^ 0x80 }
                for j in 0..<16 {
                    paired8[pair * 64 + half * 16 + j] = q[j]
                    paired8[pair * 64 + 32 + half * 16 + j] = q[16 + j]
                }
                // Portable layouts (Int16), only where the portable kernels run.
                guard portable else { continue }
                for i in 0..<16 {
                    evenOddQ[start + i] = Int16(q[2 * i])
                    evenOddQ[start + 16 + i] = Int16(q[2 * i + 1])
                }
                for i in 0..<8 {
                    for k in 0..<4 {
                        // Nibble position k of 16-bit lane i holds value 2i, 2i+16, 2i+1, 2i+17.
                        let source = 2 * i + (k & 2 == 0 ? 0 : 1) + (k & 1 == 0 ? 0 : 16)
                        paired[pair * 64 + k * 16 + half * 8 + i] = Int16(q[source])
                    }
                }
            }
        }
    }

    // Per-token plane addresses for the kernels.
    @inline(__always) func floatPointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer((floats + t &* floatStride).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func evenOddPointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer((evenOdd + t &* evenOddStride).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func q8Int8Pointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(q8Int8 + t &* int8Stride) }
    @inline(__always) func q4Int8Pointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(q4Int8 + t &* int8Stride) }
    @inline(__always) func q8OffsetPointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(q8Offset + t &* int8Stride) }
    @inline(__always) func q8Pointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(q8 + t &* q8Stride) }
    @inline(__always) func q4Pointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(q4 + t &* q4Stride) }
    @inline(__always) func scalePointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer((scales + t &* scaleStride).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func correctionPointer(_ t: Int) -> UnsafeRawPointer {
        UnsafeRawPointer(corrections + t &* correctionStride)
    }
}

extension PreparedActivations {
    /// Copies token `source` of `other` (same columns) into token `token` of this object: the
    /// prefill MoE gathers the tokens routed to an expert without quantizing them again. Must
    /// copy every per-token plane of `PreparedActivations` (EngineDeterminismTests'
    /// prefill ≡ decode check fails if one is missed).
    public func copyToken(_ token: Int, from other: PreparedActivations, token source: Int) {
        precondition(other.columns == columns && token < tokens && source < other.tokens)
        func copy(_ to: UnsafeMutableRawPointer, _ from: UnsafeMutableRawPointer, _ stride: Int) {
            (to + token * stride).copyMemory(from: from + source * stride, byteCount: stride)
        }
        copy(floats, other.floats, floatStride)
        copy(evenOdd, other.evenOdd, evenOddStride)
        copy(q8, other.q8, q8Stride)
        copy(q4, other.q4, q4Stride)
        copy(q8Int8, other.q8Int8, int8Stride)
        copy(q4Int8, other.q4Int8, int8Stride)
        copy(q8Offset, other.q8Offset, int8Stride)
        copy(scales, other.scales, scaleStride)
        copy(corrections, other.corrections, correctionStride)
    }
}
