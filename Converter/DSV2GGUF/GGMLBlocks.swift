import DSV2Formats

/// Scalar definitions of the ggml block types dsv2 reads, written from the layouts of ggml's
/// `block_*` structs (docs/gguf.md and ggml-common.h of the ggml repository). Each value is
/// computed with exactly the float operations, in the order, of ggml's reference
/// `dequantize_row_*` (so the results are bit-identical to it and to gguf-py's `gguf.quants`,
/// which the tests check on committed random blocks).
///
/// Q8_0 and Q4_0 are also converted losslessly to and from dsv2's `q8` / `q4` (same values:
/// 32 per block, one f16 scale, Q4_0's nibble order) by moving the scales into their own plane.
public enum GGMLBlocks {
    /// `count` values of a tensor of `type` stored in `bytes` (which must hold exactly
    /// count / blockSize blocks), as f32.
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType, count: Int) throws -> [Float] {
        [Float](unsafeUninitializedCapacity: count) { buffer, initialized in
            dequantize(bytes, type: type, count: count, into: buffer.baseAddress!)
            initialized = count
        }
    }

    /// As `dequantize(_:type:count:)`, into `out`. Requires `type.isReadable`, `count` a multiple
    /// of the block size and `bytes.count == count / blockSize · bytesPerBlock` (`GGUFFile`
    /// checks all three for every tensor it lists).
    public static func dequantize(_ bytes: UnsafeRawBufferPointer, type: GGMLType, count: Int,
                                  into out: UnsafeMutablePointer<Float>) {
        precondition(type.isReadable && count % type.blockSize == 0
                     && bytes.count == count / type.blockSize * type.bytesPerBlock, "GGMLBlocks: bad \(type) buffer")
        guard count > 0, let base = bytes.baseAddress else { return }
        let src = base.assumingMemoryBound(to: UInt8.self)
        let blocks = count / type.blockSize
        for b in 0..<blocks {
            let block = src + b * type.bytesPerBlock
            let y = out + b * type.blockSize
            switch type {
            case .f32: y[0] = Float(bitPattern: u32(block))
            case .f16: y[0] = half(block)
            case .bf16: y[0] = Float(bitPattern: UInt32(u16(block)) << 16)
            case .q4_0: q4_0(block, y)
            case .q4_1: q4_1(block, y)
            case .q5_0: q5_0(block, y)
            case .q5_1: q5_1(block, y)
            case .q8_0: q8_0(block, y)
            case .q2_K: q2_K(block, y)
            case .q3_K: q3_K(block, y)
            case .q4_K: q4_K(block, y)
            case .q5_K: q5_K(block, y)
            case .q6_K: q6_K(block, y)
            case .q8_K: q8_K(block, y)
            default: preconditionFailure("GGMLBlocks: \(type) is not readable")
            }
        }
    }

    // MARK: Little-endian field access

    @inline(__always) static func u16(_ p: UnsafePointer<UInt8>) -> UInt16 { UInt16(p[0]) | UInt16(p[1]) << 8 }
    @inline(__always) static func u32(_ p: UnsafePointer<UInt8>) -> UInt32 {
        UInt32(p[0]) | UInt32(p[1]) << 8 | UInt32(p[2]) << 16 | UInt32(p[3]) << 24
    }
    @inline(__always) static func half(_ p: UnsafePointer<UInt8>) -> Float { Float(Float16(bitPattern: u16(p))) }

    // MARK: 32-value blocks

    /// block_q4_0 { f16 d; u8 qs[16] }: x = d·(q − 8); byte j holds value j (low nibble) and j + 16.
    static func q4_0(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), qs = p + 2
        for j in 0..<16 {
            y[j] = d * Float(Int(qs[j] & 0x0F) - 8)
            y[j + 16] = d * Float(Int(qs[j] >> 4) - 8)
        }
    }

    /// block_q4_1 { f16 d; f16 m; u8 qs[16] }: x = d·q + m.
    static func q4_1(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), m = half(p + 2), qs = p + 4
        for j in 0..<16 {
            y[j] = d * Float(qs[j] & 0x0F) + m
            y[j + 16] = d * Float(qs[j] >> 4) + m
        }
    }

    /// block_q5_0 { f16 d; u32 qh; u8 qs[16] }: bit j of qh is the fifth bit of value j; x = d·(q − 16).
    static func q5_0(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), qh = u32(p + 2), qs = p + 6
        for j in 0..<16 {
            let low = Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
            let high = Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(low - 16)
            y[j + 16] = d * Float(high - 16)
        }
    }

    /// block_q5_1 { f16 d; f16 m; u32 qh; u8 qs[16] }: x = d·q + m.
    static func q5_1(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), m = half(p + 2), qh = u32(p + 4), qs = p + 8
        for j in 0..<16 {
            let low = Int(qs[j] & 0x0F) | Int((qh >> UInt32(j)) & 1) << 4
            let high = Int(qs[j] >> 4) | Int((qh >> UInt32(j + 16)) & 1) << 4
            y[j] = d * Float(low) + m
            y[j + 16] = d * Float(high) + m
        }
    }

    /// block_q8_0 { f16 d; i8 qs[32] }: x = d·q.
    static func q8_0(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p)
        for j in 0..<32 { y[j] = d * Float(Int8(bitPattern: p[2 + j])) }
    }

    // MARK: 256-value super-blocks (k-quants)

    /// block_q2_K { u8 scales[16]; u8 qs[64]; f16 d; f16 dmin }: 16 groups of 16, each with a
    /// 4-bit scale (low nibble) and 4-bit min (high nibble); x = (d·sc)·q − dmin·m, q 2-bit.
    static func q2_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let scales = p, qs = p + 16, d = half(p + 80), dmin = half(p + 82)
        for e in 0..<256 {
            let half128 = e / 128, r = e % 128, shift = (r / 32) * 2, l = r % 32
            let sc = scales[e / 16]
            let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
            let q = (qs[half128 * 32 + l] >> UInt8(shift)) & 3
            y[e] = dl * Float(q) - ml
        }
    }

    /// block_q3_K { u8 hmask[32]; u8 qs[64]; u8 scales[12]; f16 d }: 16 groups of 16 with 6-bit
    /// signed scales (low 4 bits in bytes 0-7, high 2 bits in bytes 8-11); q = 2 low bits − 4 when
    /// the high bit (hmask) is clear; x = (d·(sc − 32))·q.
    static func q3_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let hmask = p, qs = p + 32, packed = p + 96, d = half(p + 108)
        var scales = [Int](repeating: 0, count: 16)
        for i in 0..<16 {
            let low = i < 8 ? Int(packed[i] & 0x0F) : Int(packed[i - 8] >> 4)
            let high = Int((packed[8 + i % 4] >> UInt8(2 * (i / 4))) & 3)
            scales[i] = (low | high << 4) - 32
        }
        for e in 0..<256 {
            let half128 = e / 128, r = e % 128, shift = (r / 32) * 2, l = r % 32
            let low = Int((qs[half128 * 32 + l] >> UInt8(shift)) & 3)
            let highSet = (hmask[e % 32] >> UInt8(e / 32)) & 1 == 1
            let dl = d * Float(scales[e / 16])
            y[e] = dl * Float(low - (highSet ? 0 : 4))
        }
    }

    /// The 6-bit scale and min of group j (0-7) of a Q4_K/Q5_K block (`get_scale_min_k4`).
    @inline(__always) static func scaleMinK4(_ j: Int, _ q: UnsafePointer<UInt8>) -> (Int, Int) {
        if j < 4 { return (Int(q[j] & 63), Int(q[j + 4] & 63)) }
        return (Int(q[j + 4] & 0x0F) | Int(q[j - 4] >> 6) << 4, Int(q[j + 4] >> 4) | Int(q[j] >> 6) << 4)
    }

    /// block_q4_K { f16 d; f16 dmin; u8 scales[12]; u8 qs[128] }: 8 groups of 32; group g's
    /// values are the low (g even) or high (g odd) nibbles of bytes 32·(g/2) …; x = (d·sc)·q − dmin·m.
    static func q4_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), dmin = half(p + 2), packed = p + 4, qs = p + 16
        for g in 0..<8 {
            let (sc, m) = scaleMinK4(g, packed)
            let d1 = d * Float(sc), m1 = dmin * Float(m)
            for l in 0..<32 {
                let q = (qs[(g / 2) * 32 + l] >> UInt8(4 * (g % 2))) & 0x0F
                y[g * 32 + l] = d1 * Float(q) - m1
            }
        }
    }

    /// block_q5_K { f16 d; f16 dmin; u8 scales[12]; u8 qh[32]; u8 qs[128] }: as Q4_K plus a fifth
    /// bit, bit g of qh[l] for value l of group g.
    static func q5_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = half(p), dmin = half(p + 2), packed = p + 4, qh = p + 16, qs = p + 48
        for g in 0..<8 {
            let (sc, m) = scaleMinK4(g, packed)
            let d1 = d * Float(sc), m1 = dmin * Float(m)
            for l in 0..<32 {
                let low = (qs[(g / 2) * 32 + l] >> UInt8(4 * (g % 2))) & 0x0F
                let high = (qh[l] >> UInt8(g)) & 1
                y[g * 32 + l] = d1 * Float(low | high << 4) - m1
            }
        }
    }

    /// block_q6_K { u8 ql[128]; u8 qh[64]; i8 scales[16]; f16 d }: each half of 128 values takes
    /// 64 bytes of ql (low nibbles first) and 32 of qh (2 bits per value); x = (d·sc)·(q − 32).
    static func q6_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let ql = p, qh = p + 128, scales = p + 192, d = half(p + 208)
        for e in 0..<256 {
            let h = e / 128, r = e % 128
            let low = (ql[h * 64 + r % 64] >> UInt8(4 * (r / 64))) & 0x0F
            let high = (qh[h * 32 + r % 32] >> UInt8(2 * (r / 32))) & 3
            let q = Int(low | high << 4) - 32
            let dl = d * Float(Int8(bitPattern: scales[e / 16]))
            y[e] = dl * Float(q)
        }
    }

    /// block_q8_K { f32 d; i8 qs[256]; i16 bsums[16] }: x = d·q (the sums are not needed).
    static func q8_K(_ p: UnsafePointer<UInt8>, _ y: UnsafeMutablePointer<Float>) {
        let d = Float(bitPattern: u32(p))
        for j in 0..<256 { y[j] = d * Float(Int8(bitPattern: p[4 + j])) }
    }

    // MARK: Q8_0 / Q4_0 ↔ q8 / q4

    /// The dsv2 type a ggml block type converts to losslessly, if any.
    public static func planarType(_ type: GGMLType) -> WeightType? {
        switch type {
        case .q8_0: return .q8
        case .q4_0: return .q4
        default: return nil
        }
    }

    /// The ggml type holding the same blocks as a dsv2 quantized type.
    public static func ggmlType(_ type: WeightType) -> GGMLType {
        switch type {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        case .q8: return .q8_0
        case .q4: return .q4_0
        }
    }

    /// Interleaved ggml blocks (`rows` rows of `columns` values, columns a multiple of 32) →
    /// dsv2's two planes, into `destination` (`type.byteCount(rows:columns:)` bytes, zeroed).
    public static func toPlanes(_ source: UnsafeRawBufferPointer, type: WeightType, rows: Int, columns: Int,
                                into destination: UnsafeMutableRawPointer) {
        let blocks = rows * (columns / 32), quantBytes = type.quantBytesPerBlock, stride = 2 + quantBytes
        let src = source.baseAddress!.assumingMemoryBound(to: UInt8.self)
        let quants = destination.assumingMemoryBound(to: UInt8.self)
        let scales = (destination + type.scalesOffset(rows: rows, columns: columns)).assumingMemoryBound(to: UInt8.self)
        for b in 0..<blocks {
            let block = src + b * stride
            scales[2 * b] = block[0]
            scales[2 * b + 1] = block[1]
            (quants + b * quantBytes).update(from: block + 2, count: quantBytes)
        }
    }

    /// dsv2's two planes → interleaved ggml blocks (columns a multiple of 32), into `destination`
    /// (rows · columns / 32 · (2 + quantBytesPerBlock) bytes).
    public static func fromPlanes(_ source: UnsafeRawPointer, type: WeightType, rows: Int, columns: Int,
                                  into destination: UnsafeMutablePointer<UInt8>) {
        let blocks = rows * (columns / 32), quantBytes = type.quantBytesPerBlock, stride = 2 + quantBytes
        let quants = source.assumingMemoryBound(to: UInt8.self)
        let scales = (source + type.scalesOffset(rows: rows, columns: columns)).assumingMemoryBound(to: UInt8.self)
        for b in 0..<blocks {
            let block = destination + b * stride
            block[0] = scales[2 * b]
            block[1] = scales[2 * b + 1]
            (block + 2).update(from: quants + b * quantBytes, count: quantBytes)
        }
    }
}
