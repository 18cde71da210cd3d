import DSV2Formats
/// Activations X [tokens, columns] prepared once for every kernel that multiplies them: the MoE
/// runs many experts (and the attention several projections) on the same input, so quantizing
/// per matrix would repeat the work. Prepared for one `KernelTable` (`kernels`), whose kernels
/// then multiply it; it holds per token only the planes that table reads:
///   - always: the floats, zero-padded to a multiple of 32 (f32/f16/bf16 weights), and a copy
///     in even/odd order per group of 16 (bf16 weights unpack two values per 32-bit lane); the
///     per-block scales da of the int8 quants (Float, padded with zeros to a multiple of 8
///     blocks); and the q4 offset corrections, eight Int32 per pair: −8 · Σ a over block A in
///     lane 0 and over block B in lane 4 (zero elsewhere), so the q4 kernels multiply the
///     stored nibbles u ∈ [0, 15] and still get Σ (u − 8)·a exactly (lanes 0–3 / 4–7 are
///     summed per block);
///   - the int8 quants per block of 32 (`ScalarQuantization.quantizeActivationBlock`, the
///     spec) in the `ActivationLayouts` of the table's q8 and q4 kernels (see there).
///
/// q4 pair order (Int16, portable kernels): a q4 block's 16 bytes, loaded as eight 16-bit
/// lanes, give four nibble vectors by shift and mask: lane i holds values 2i (bits 0–3), 2i+16
/// (4–7), 2i+1 (8–11), 2i+17 (12–15). Two consecutive blocks A, B are loaded as one 32-byte
/// vector; for each of the four nibble positions k the activations are stored as one 16-lane
/// vector [A's 8 lanes, B's 8 lanes]. q4 pair order (Int8, x86 kernels): per pair of blocks
/// the 32 bytes [A₀…A₁₅, B₀…B₁₅] then [A₁₆…A₃₁, B₁₆…B₃₁], matching the low and high nibbles of
/// the 32 weight bytes of A and B. An odd last block is paired with a zero block.
///
/// Not thread-safe to `load` while kernels read it; reading from many threads is fine.
public final class PreparedActivations: @unchecked Sendable {
    public let tokens: Int
    public let columns: Int
    /// The kernels these activations are laid out for (`Kernels.matvec` / `matmul` use them).
    public let kernels: KernelTable
    let blocks: Int
    let pairs: Int
    /// Every per-token plane: its first token and its stride in bytes (0 for a plane the table
    /// does not read: it is neither allocated nor filled).
    struct Plane {
        let base: UnsafeMutableRawPointer, stride: Int
        @inline(__always) func token(_ t: Int) -> UnsafeMutableRawPointer { base + t &* stride }
    }
    let floats: Plane, evenOdd: Plane, scales: Plane, corrections: Plane
    let q8Int16: Plane, q4Int16: Plane, q8Int8: Plane, q4Int8: Plane, q8Offset: Plane
    public let storage: AlignedBuffer

    /// Allocates room for `tokens` vectors of `columns` values (all zero until `load`), laid out
    /// for `kernels` (default: this CPU's).
    public init(columns: Int, tokens: Int = 1, kernels: KernelTable = .native) {
        precondition(columns > 0 && tokens > 0, "PreparedActivations: empty shape [\(tokens), \(columns)]")
        self.tokens = tokens
        self.columns = columns
        self.kernels = kernels
        blocks = WeightType.blocksPerRow(columns)
        pairs = (blocks + 1) / 2
        let layouts = kernels.activationLayouts
        func line(_ n: Int) -> Int { (n + 63) & ~63 }
        // Per-token bytes of each plane, in storage order.
        let strides = [line(blocks * 32 * 4), line(blocks * 32 * 4), line(((blocks + 7) / 8) * 8 * 4), line(pairs * 8 * 4),
                       layouts.contains(.q8Int16) ? line(blocks * 32 * 2) : 0,
                       layouts.contains(.q4Int16) ? line(pairs * 64 * 2) : 0,
                       layouts.contains(.q8Int8) ? line(pairs * 64) : 0,
                       layouts.contains(.q4Int8) ? line(pairs * 64) : 0,
                       layouts.contains(.q8Offset) ? line(pairs * 64) : 0]
        storage = AlignedBuffer(byteCount: strides.reduce(0, +) * tokens)
        var next = storage.pointer
        let planes = strides.map { stride -> Plane in
            defer { next += stride * tokens }
            return Plane(base: next, stride: stride)
        }
        (floats, evenOdd, scales, corrections) = (planes[0], planes[1], planes[2], planes[3])
        (q8Int16, q4Int16, q8Int8, q4Int8, q8Offset) = (planes[4], planes[5], planes[6], planes[7], planes[8])
    }

    /// The first `count` tokens, sharing this storage (every plane keeps its tokens in order, so
    /// they are a prefix of each): a product over part of a buffer sized for the largest input.
    public func prefix(_ count: Int) -> PreparedActivations {
        precondition(count > 0 && count <= tokens, "PreparedActivations: prefix of \(count) tokens of \(tokens)")
        return count == tokens ? self : PreparedActivations(prefixOf: self, tokens: count)
    }

    private init(prefixOf other: PreparedActivations, tokens: Int) {
        self.tokens = tokens
        (columns, kernels, blocks, pairs, storage) = (other.columns, other.kernels, other.blocks, other.pairs, other.storage)
        (floats, evenOdd, scales, corrections) = (other.floats, other.evenOdd, other.scales, other.corrections)
        (q8Int16, q4Int16, q8Int8, q4Int8, q8Offset) = (other.q8Int16, other.q4Int16, other.q8Int8, other.q4Int8, other.q8Offset)
    }

    /// Prepares `x` [tokens, columns] (row-major) for `kernels`.
    public convenience init(_ x: UnsafePointer<Float>, columns: Int, tokens: Int = 1, kernels: KernelTable = .native) {
        self.init(columns: columns, tokens: tokens, kernels: kernels)
        load(x)
    }

    /// Replaces the contents with `x` [tokens, columns] (reuse one object per layer input).
    public func load(_ x: UnsafePointer<Float>) {
        for t in 0..<tokens { loadToken(t, from: x + t * columns) }
    }

    /// Replaces token `token` with the `columns` values at `x`.
    public func loadToken(_ token: Int, from x: UnsafePointer<Float>) {
        precondition(token >= 0 && token < tokens, "PreparedActivations: token \(token) outside 0..<\(tokens)")
        let f = floats.token(token).assumingMemoryBound(to: Float.self)
        f.update(from: x, count: columns)
        (f + columns).update(repeating: 0, count: blocks * 32 - columns)
        let e = evenOdd.token(token).assumingMemoryBound(to: Float.self)
        for g in 0..<(blocks * 2) {
            for i in 0..<8 {
                e[g * 16 + i] = f[g * 16 + 2 * i]
                e[g * 16 + 8 + i] = f[g * 16 + 2 * i + 1]
            }
        }

        let scale = scales.token(token).assumingMemoryBound(to: Float.self)
        let correction = corrections.token(token).assumingMemoryBound(to: Int32.self)
        let evenOddQ = q8Int16.token(token).assumingMemoryBound(to: Int16.self)
        let paired = q4Int16.token(token).assumingMemoryBound(to: Int16.self)
        let natural8 = q8Int8.token(token).assumingMemoryBound(to: Int8.self)
        let paired8 = q4Int8.token(token).assumingMemoryBound(to: Int8.self)
        let offset8 = q8Offset.token(token).assumingMemoryBound(to: UInt8.self)
        let layouts = kernels.activationLayouts
        let hasQ8Int16 = layouts.contains(.q8Int16), hasQ4Int16 = layouts.contains(.q4Int16)
        let hasQ8Int8 = layouts.contains(.q8Int8), hasQ4Int8 = layouts.contains(.q4Int8)
        let hasQ8Offset = layouts.contains(.q8Offset)
        // Padding of an odd last block's pair (and of the byte planes' line rounding).
        if hasQ8Int8 { natural8.update(repeating: 0, count: pairs * 64) }
        if hasQ8Offset { offset8.update(repeating: 0x80, count: pairs * 64) }
        if hasQ4Int8 { paired8.update(repeating: 0, count: pairs * 64) }
        if hasQ4Int16 { paired.update(repeating: 0, count: pairs * 64) }
        correction.update(repeating: 0, count: pairs * 8)
        scale.update(repeating: 0, count: scales.stride / 4)

        withUnsafeTemporaryAllocation(of: Int8.self, capacity: 32) { buffer in
            let q = buffer.baseAddress!
            for b in 0..<blocks {
                let start = b * 32
                scale[b] = ScalarQuantization.quantizeActivationBlock(x + start, count: min(32, columns - start), into: q)
                let pair = b / 2, half = b % 2
                var blockSum: Int32 = 0
                for j in 0..<32 { blockSum += Int32(q[j]) }
                correction[pair * 8 + half * 4] = -8 * blockSum
                if hasQ8Int8 { (natural8 + start).update(from: q, count: 32) }
                if hasQ8Offset { for j in 0..<32 { offset8[start + j] = UInt8(bitPattern: q[j]) ^ 0x80 } }
                if hasQ4Int8 {
                    for j in 0..<16 {
                        paired8[pair * 64 + half * 16 + j] = q[j]
                        paired8[pair * 64 + 32 + half * 16 + j] = q[16 + j]
                    }
                }
                if hasQ8Int16 {
                    for i in 0..<16 {
                        evenOddQ[start + i] = Int16(q[2 * i])
                        evenOddQ[start + 16 + i] = Int16(q[2 * i + 1])
                    }
                }
                if hasQ4Int16 {
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
    }

    // Per-token plane addresses for the kernels.
    @inline(__always) func floatPointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer(floats.token(t).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func evenOddPointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer(evenOdd.token(t).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func scalePointer(_ t: Int) -> UnsafePointer<Float> {
        UnsafePointer(scales.token(t).assumingMemoryBound(to: Float.self))
    }
    @inline(__always) func correctionPointer(_ t: Int) -> UnsafeRawPointer { UnsafeRawPointer(corrections.token(t)) }
    /// For every token t, its planes at planes[3t] (quants in `layout`), [3t + 1] (scales) and
    /// [3t + 2] (q4 corrections): the argument of the micro-kernels.
    func tokenPlanes(_ layout: ActivationLayouts, into planes: UnsafeMutablePointer<UnsafeRawPointer>) {
        for t in 0..<tokens {
            planes[3 &* t] = quantPointer(layout, t)
            planes[3 &* t &+ 1] = UnsafeRawPointer(scalePointer(t))
            planes[3 &* t &+ 2] = correctionPointer(t)
        }
    }

    /// The quants of token `t` in `layout` (one of the table's layouts).
    @inline(__always) func quantPointer(_ layout: ActivationLayouts, _ t: Int) -> UnsafeRawPointer {
        switch layout {
        case .q8Int16: return UnsafeRawPointer(q8Int16.token(t))
        case .q4Int16: return UnsafeRawPointer(q4Int16.token(t))
        case .q8Int8: return UnsafeRawPointer(q8Int8.token(t))
        case .q4Int8: return UnsafeRawPointer(q4Int8.token(t))
        default: return UnsafeRawPointer(q8Offset.token(t))
        }
    }
}

extension PreparedActivations {
    /// Copies token `source` of `other` (same columns and kernels) into token `token` of this
    /// object: the prefill MoE gathers the tokens routed to an expert without quantizing them
    /// again. Copies every per-token plane (EngineBatchTests fails if one is missed: a batch's
    /// decode tokens go through the gathered path, alone each through the single-token one).
    public func copyToken(_ token: Int, from other: PreparedActivations, token source: Int) {
        precondition(other.columns == columns && other.kernels === kernels && token < tokens && source < other.tokens)
        for (to, from) in [(floats, other.floats), (evenOdd, other.evenOdd), (scales, other.scales),
                           (corrections, other.corrections), (q8Int16, other.q8Int16), (q4Int16, other.q4Int16),
                           (q8Int8, other.q8Int8), (q4Int8, other.q4Int8), (q8Offset, other.q8Offset)] {
            to.token(token).copyMemory(from: from.token(source), byteCount: to.stride)
        }
    }
}
