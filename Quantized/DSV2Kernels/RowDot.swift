import CKernelSupport
import DSV2Formats

/// One output element: the dot product of one weight row with one prepared activation vector.
/// These are the inner loops of every mat-vec and mat-mat; they are written for AVX2/FMA/F16C
/// code generation (see docs/KERNELS.md and scripts/check-codegen):
/// raw-pointer vector loads, 16-bit integer lanes, `&`-arithmetic on indices, and a software
/// prefetch `prefetchDistance` bytes ahead of the weight stream.
///
/// Integer parts are exact: q8 block sums |Σ q·a| ≤ 32·127·127 < 2^22 and q4 sums
/// |Σ (u−8)·a| ≤ 32·8·127 fit in Int32 and convert to Float exactly. The float parts (block
/// scale products and their accumulation) are reassociated: the result differs from a
/// sequential sum by rounding only.
enum RowDot {
    /// Bytes ahead of the current weight pointer to prefetch (4 KiB measured best from DRAM).
    static let prefetchDistance = 4096

    // MARK: q8 weights × q8 activations

    /// Σ over one block of 32 of w·a as eight 32-bit partial sums. `w`: 32 int8 quants;
    /// `a`: the block's activations as Int16 in even/odd order (a₀, a₂, …, a₃₀, a₁, a₃, …, a₃₁).
    /// The quants are loaded as 16-bit lanes and sign-extended by shifts (the standard library's
    /// Int8→Int16 vector conversion is an out-of-line call). Each 16-bit sum w₂ᵢa₂ᵢ + w₂ᵢ₊₁a₂ᵢ₊₁
    /// is at most 2·127·127 = 32258 < 2^15, so it cannot overflow before widening.
    @inline(__always)
    static func q8Block(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer) -> SIMD8<Int32> {
        let v = w.loadUnaligned(as: SIMD16<Int16>.self)
        let even = (v &<< 8) &>> 8, odd = v &>> 8
        let p = even &* a.loadUnaligned(as: SIMD16<Int16>.self)
            &+ odd &* a.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
        // Pairwise widening: lane l = sign-extended low half + high half of 32-bit lane l.
        let pi = unsafeBitCast(p, to: SIMD8<Int32>.self)
        return ((pi &<< 16) &>> 16) &+ (pi &>> 16)
    }

    /// One q8 row: `w` quants (blocks × 32 bytes), `ws` its f16 scales, `a`/`aScales` the token's
    /// even/odd-order Int16 activations and per-block scales.
    @inline(never)
    static func q8(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                   _ aScales: UnsafePointer<Float>, blocks: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let sa = UnsafeRawPointer(aScales)
        var b = 0
        // Eight blocks (256 bytes of quants) per step: the eight scales convert in one vector.
        while b &+ 8 <= blocks {
            let wb = w + b &* 32, ab = a + b &* 64
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(wb + (prefetchDistance &+ 128))
            dsv2_prefetch(wb + (prefetchDistance &+ 192))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let s = widen(ws.loadUnaligned(fromByteOffset: b &* 2, as: SIMD8<Float16>.self))
                * sa.loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
            acc0.addProduct(SIMD8<Float>(q8Block(wb, ab)), SIMD8(repeating: s[0]))
            acc1.addProduct(SIMD8<Float>(q8Block(wb + 32, ab + 64)), SIMD8(repeating: s[1]))
            acc0.addProduct(SIMD8<Float>(q8Block(wb + 64, ab + 128)), SIMD8(repeating: s[2]))
            acc1.addProduct(SIMD8<Float>(q8Block(wb + 96, ab + 192)), SIMD8(repeating: s[3]))
            acc0.addProduct(SIMD8<Float>(q8Block(wb + 128, ab + 256)), SIMD8(repeating: s[4]))
            acc1.addProduct(SIMD8<Float>(q8Block(wb + 160, ab + 320)), SIMD8(repeating: s[5]))
            acc0.addProduct(SIMD8<Float>(q8Block(wb + 192, ab + 384)), SIMD8(repeating: s[6]))
            acc1.addProduct(SIMD8<Float>(q8Block(wb + 224, ab + 448)), SIMD8(repeating: s[7]))
            b &+= 8
        }
        while b < blocks {
            let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * aScales[b]
            acc0.addProduct(SIMD8<Float>(q8Block(w + b &* 32, a + b &* 64)), SIMD8(repeating: s))
            b &+= 1
        }
        return (acc0 + acc1).sum()
    }

    // MARK: q4 weights × q8 activations

    /// Two consecutive q4 blocks A, B (32 bytes of nibbles) against their activations in pair
    /// order (see `PreparedActivations`): 32-bit lanes 0–3 hold block A's partial sums of
    /// (u − 8)·a, lanes 4–7 block B's. One shift and one mask per nibble position; the stored
    /// offset 8 is removed by the precomputed correction `c` instead of per value.
    /// |u·a| ≤ 15·127, four of them per 16-bit lane ≤ 7620: no overflow.
    @inline(__always)
    static func q4Pair(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD8<Int32> {
        let v = w.loadUnaligned(as: SIMD16<UInt16>.self)
        let m = SIMD16<UInt16>(repeating: 0x000F)
        let u0 = unsafeBitCast(v & m, to: SIMD16<Int16>.self)
        let u1 = unsafeBitCast((v &>> 4) & m, to: SIMD16<Int16>.self)
        let u2 = unsafeBitCast((v &>> 8) & m, to: SIMD16<Int16>.self)
        let u3 = unsafeBitCast(v &>> 12, to: SIMD16<Int16>.self)
        var p = u0 &* a.loadUnaligned(as: SIMD16<Int16>.self)
        p &+= u1 &* a.loadUnaligned(fromByteOffset: 32, as: SIMD16<Int16>.self)
        p &+= u2 &* a.loadUnaligned(fromByteOffset: 64, as: SIMD16<Int16>.self)
        p &+= u3 &* a.loadUnaligned(fromByteOffset: 96, as: SIMD16<Int16>.self)
        let pi = unsafeBitCast(p, to: SIMD8<Int32>.self)
        return ((pi &<< 16) &>> 16) &+ (pi &>> 16) &+ c.loadUnaligned(as: SIMD8<Int32>.self)
    }

    /// The odd last block of a row: block A of a pair, on 128-bit vectors.
    @inline(__always)
    static func q4Single(_ w: UnsafeRawPointer, _ a: UnsafeRawPointer, _ c: UnsafeRawPointer) -> SIMD4<Int32> {
        let v = w.loadUnaligned(as: SIMD8<UInt16>.self)
        let m = SIMD8<UInt16>(repeating: 0x000F)
        let u0 = unsafeBitCast(v & m, to: SIMD8<Int16>.self)
        let u1 = unsafeBitCast((v &>> 4) & m, to: SIMD8<Int16>.self)
        let u2 = unsafeBitCast((v &>> 8) & m, to: SIMD8<Int16>.self)
        let u3 = unsafeBitCast(v &>> 12, to: SIMD8<Int16>.self)
        var p = u0 &* a.loadUnaligned(as: SIMD8<Int16>.self)
        p &+= u1 &* a.loadUnaligned(fromByteOffset: 32, as: SIMD8<Int16>.self)
        p &+= u2 &* a.loadUnaligned(fromByteOffset: 64, as: SIMD8<Int16>.self)
        p &+= u3 &* a.loadUnaligned(fromByteOffset: 96, as: SIMD8<Int16>.self)
        let pi = unsafeBitCast(p, to: SIMD4<Int32>.self)
        return ((pi &<< 16) &>> 16) &+ (pi &>> 16) &+ c.loadUnaligned(as: SIMD4<Int32>.self)
    }

    /// One q4 row: `w` nibbles (blocks × 16 bytes), `ws` f16 scales, `a` pair-order activations,
    /// `aScales` per-block activation scales, `c` per-pair offset corrections.
    @inline(never)
    static func q4(_ w: UnsafeRawPointer, _ ws: UnsafeRawPointer, _ a: UnsafeRawPointer,
                   _ aScales: UnsafePointer<Float>, _ c: UnsafeRawPointer, blocks: Int) -> Float {
        var acc0 = SIMD8<Float>(), acc1 = SIMD8<Float>()
        let sa = UnsafeRawPointer(aScales)
        var b = 0
        // Eight blocks = four pairs (128 bytes of nibbles) per step.
        while b &+ 8 <= blocks {
            let wb = w + b &* 16, ab = a + b &* 64, cb = c + b &* 16
            dsv2_prefetch(wb + prefetchDistance)
            dsv2_prefetch(wb + (prefetchDistance &+ 64))
            dsv2_prefetch(ws + (b &* 2 &+ 512))
            let s = widen(ws.loadUnaligned(fromByteOffset: b &* 2, as: SIMD8<Float16>.self))
                * sa.loadUnaligned(fromByteOffset: b &* 4, as: SIMD8<Float>.self)
            acc0.addProduct(SIMD8<Float>(q4Pair(wb, ab, cb)),
                            SIMD8(s[0], s[0], s[0], s[0], s[1], s[1], s[1], s[1]))
            acc1.addProduct(SIMD8<Float>(q4Pair(wb + 32, ab + 128, cb + 32)),
                            SIMD8(s[2], s[2], s[2], s[2], s[3], s[3], s[3], s[3]))
            acc0.addProduct(SIMD8<Float>(q4Pair(wb + 64, ab + 256, cb + 64)),
                            SIMD8(s[4], s[4], s[4], s[4], s[5], s[5], s[5], s[5]))
            acc1.addProduct(SIMD8<Float>(q4Pair(wb + 96, ab + 384, cb + 96)),
                            SIMD8(s[6], s[6], s[6], s[6], s[7], s[7], s[7], s[7]))
            b &+= 8
        }
        while b &+ 2 <= blocks {
            let s0 = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * aScales[b]
            let s1 = Float(ws.loadUnaligned(fromByteOffset: b &* 2 &+ 2, as: Float16.self)) * aScales[b &+ 1]
            acc0.addProduct(SIMD8<Float>(q4Pair(w + b &* 16, a + b &* 64, c + b &* 16)),
                            SIMD8(lowHalf: SIMD4(repeating: s0), highHalf: SIMD4(repeating: s1)))
            b &+= 2
        }
        var total = (acc0 + acc1).sum()
        if b < blocks {
            let s = Float(ws.loadUnaligned(fromByteOffset: b &* 2, as: Float16.self)) * aScales[b]
            total += (SIMD4<Float>(q4Single(w + b &* 16, a + b &* 64, c + b &* 16)) * s).sum()
        }
        return total
    }

    // MARK: float weights × f32 activations

    @inline(never)
    static func f32(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        let xr = UnsafeRawPointer(x)
        var c = 0
        while c &+ 32 <= columns {
            let o = c &* 4
            dsv2_prefetch(w + (o &+ prefetchDistance))
            dsv2_prefetch(w + (o &+ prefetchDistance &+ 64))
            acc0.addProduct(w.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self),
                            xr.loadUnaligned(fromByteOffset: o, as: SIMD16<Float>.self))
            acc1.addProduct(w.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self),
                            xr.loadUnaligned(fromByteOffset: o &+ 64, as: SIMD16<Float>.self))
            c &+= 32
        }
        var total = (acc0 + acc1).sum()
        while c < columns {
            total += w.loadUnaligned(fromByteOffset: c &* 4, as: Float.self) * x[c]
            c &+= 1
        }
        return total
    }

    @inline(never)
    static func f16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, columns: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        let xr = UnsafeRawPointer(x)
        var c = 0
        while c &+ 32 <= columns {
            let o = c &* 2
            dsv2_prefetch(w + (o &+ prefetchDistance))
            // F16C: one vcvtph2ps per eight values (checked by scripts/check-codegen).
            acc0.addProduct(widen(w.loadUnaligned(fromByteOffset: o, as: SIMD16<Float16>.self)),
                            xr.loadUnaligned(fromByteOffset: c &* 4, as: SIMD16<Float>.self))
            acc1.addProduct(widen(w.loadUnaligned(fromByteOffset: o &+ 32, as: SIMD16<Float16>.self)),
                            xr.loadUnaligned(fromByteOffset: c &* 4 &+ 64, as: SIMD16<Float>.self))
            c &+= 32
        }
        var total = (acc0 + acc1).sum()
        while c < columns {
            total += Float(w.loadUnaligned(fromByteOffset: c &* 2, as: Float16.self)) * x[c]
            c &+= 1
        }
        return total
    }

    @inline(never)
    /// `x`: natural-order floats (for the tail); `evenOdd`: the same values in even/odd order
    /// per group of 16 (x₀, x₂, …, x₁₄, x₁, x₃, …, x₁₅).
    static func bf16(_ w: UnsafeRawPointer, _ x: UnsafePointer<Float>, _ evenOdd: UnsafePointer<Float>,
                     columns: Int) -> Float {
        var acc0 = SIMD16<Float>(), acc1 = SIMD16<Float>()
        let xe = UnsafeRawPointer(evenOdd)
        var c = 0
        while c &+ 32 <= columns {
            let o = c &* 2
            dsv2_prefetch(w + (o &+ prefetchDistance))
            // bfloat16 is the high half of a Float: 32-bit lanes hold two values, value 2i in
            // the low half (shift it up) and 2i+1 in the high half (mask the low half off);
            // the activations are in the matching even/odd order.
            let v0 = w.loadUnaligned(fromByteOffset: o, as: SIMD8<UInt32>.self)
            let v1 = w.loadUnaligned(fromByteOffset: o &+ 32, as: SIMD8<UInt32>.self)
            let high = SIMD8<UInt32>(repeating: 0xFFFF_0000)
            acc0.addProduct(SIMD16(lowHalf: unsafeBitCast(v0 &<< 16, to: SIMD8<Float>.self),
                                   highHalf: unsafeBitCast(v0 & high, to: SIMD8<Float>.self)),
                            xe.loadUnaligned(fromByteOffset: c &* 4, as: SIMD16<Float>.self))
            acc1.addProduct(SIMD16(lowHalf: unsafeBitCast(v1 &<< 16, to: SIMD8<Float>.self),
                                   highHalf: unsafeBitCast(v1 & high, to: SIMD8<Float>.self)),
                            xe.loadUnaligned(fromByteOffset: c &* 4 &+ 64, as: SIMD16<Float>.self))
            c &+= 32
        }
        var total = (acc0 + acc1).sum()
        while c < columns {
            let bits = UInt32(w.loadUnaligned(fromByteOffset: c &* 2, as: UInt16.self)) &<< 16
            total += Float(bitPattern: bits) * x[c]
            c &+= 1
        }
        return total
    }

    /// Float16 → Float for 16 lanes, written lane by lane so that LLVM forms two vcvtph2ps
    /// (the standard library's generic vector initialiser stays an out-of-line call).
    @inline(__always)
    static func widen(_ h: SIMD8<Float16>) -> SIMD8<Float> {
        SIMD8(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]))
    }

    @inline(__always)
    static func widen(_ h: SIMD16<Float16>) -> SIMD16<Float> {
        SIMD16(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]),
               Float(h[8]), Float(h[9]), Float(h[10]), Float(h[11]), Float(h[12]), Float(h[13]), Float(h[14]), Float(h[15]))
    }
}
