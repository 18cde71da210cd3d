/// The two products of attention over latent cache rows for all heads of a token at once
/// (`LatentAttentionKernels` states the definition), on f16, bf16 or f32 rows:
///
///   scores        s[j·lanes + h]  = Σ_{c < width} qᵀ[c·lanes + h] · row_j[c]
///   weighted sum  ctx[h·rank + c] += Σ_{j < count} p[j·lanes + h] · row_j[c]   (c < rank)
///
/// Heads are the vector lanes of the scores (16 per `SIMD16`, `lanes` a multiple of 16) and
/// columns those of the weighted sum, so neither needs a horizontal sum. Each output element is
/// one chain of fused multiply-adds in the defining order (c ascending from 0; j ascending from
/// the value in ctx), whatever the register blocking: the results are bit-identical to the
/// scalar definition and between the modules below.
///
/// **One source, two modules.** This file is compiled in DSV2Kernels (x86-64-v3: `SIMD16` is a
/// pair of ymm registers, F16C widens the f16 rows) and, through a link in
/// Quantized/KernelsAVX512, in DSV2KernelsAVX512 with `DSV2_AVX512` defined (one zmm register
/// per `SIMD16`, 32 registers: wider register blocks). The entry points are `@inline(never)` so
/// that no AVX-512 code is inlined into a module built without it.
public enum LatentProducts {
    #if DSV2_AVX512
    /// Rows per register block of the scores: 8 zmm accumulators.
    static let scoreRows = 8
    /// Heads per register block of the weighted sum: 8 zmm accumulators of 16 columns.
    static let sumHeads = 8
    #else
    /// Rows per register block of the scores: 4 × SIMD16 = 8 ymm accumulators of the 16.
    static let scoreRows = 4
    /// Heads per register block of the weighted sum: 4 × SIMD16 = 8 ymm accumulators.
    static let sumHeads = 4
    #endif

    @inline(never)
    public static func scoresF16(_ qT: UnsafePointer<Float>, lanes: Int, rows: UnsafeRawPointer, rowBytes: Int, count: Int,
                                 width: Int, scratch: UnsafeMutablePointer<Float>, into s: UnsafeMutablePointer<Float>) {
        scores(qT, lanes: lanes, rows: rows, rowBytes: rowBytes, count: count, width: width, into: s) { row, i in
            widen(row, count: width, into: scratch + i &* width)
            return UnsafePointer(scratch + i &* width)
        }
    }

    /// (`scratch`, here and in the weighted sums, is not used: f32 rows are read in place, and
    /// the weighted sums widen 16 values at a time in registers. It keeps one signature for
    /// every implementation.)
    @inline(never)
    public static func scoresF32(_ qT: UnsafePointer<Float>, lanes: Int, rows: UnsafeRawPointer, rowBytes: Int, count: Int,
                                 width: Int, scratch: UnsafeMutablePointer<Float>, into s: UnsafeMutablePointer<Float>) {
        scores(qT, lanes: lanes, rows: rows, rowBytes: rowBytes, count: count, width: width, into: s) { row, _ in
            row.assumingMemoryBound(to: Float.self)
        }
    }

    /// bf16 rows widened exactly (the bits are a Float's high half); `scratch` as for f16.
    @inline(never)
    public static func scoresBF16(_ qT: UnsafePointer<Float>, lanes: Int, rows: UnsafeRawPointer, rowBytes: Int, count: Int,
                                  width: Int, scratch: UnsafeMutablePointer<Float>, into s: UnsafeMutablePointer<Float>) {
        scores(qT, lanes: lanes, rows: rows, rowBytes: rowBytes, count: count, width: width, into: s) { row, i in
            let out = scratch + i &* width
            for c in 0..<width { out[c] = widenBF16(row, c) }
            return UnsafePointer(out)
        }
    }

    @inline(never)
    public static func weightedSumF16(_ p: UnsafePointer<Float>, lanes: Int, heads: Int, rows: UnsafeRawPointer, rowBytes: Int,
                                      count: Int, rank: Int, scratch: UnsafeMutablePointer<Float>, into ctx: UnsafeMutablePointer<Float>) {
        weightedSum(p, lanes: lanes, heads: heads, rows: rows, rowBytes: rowBytes, count: count, rank: rank, elementBytes: 2,
                    into: ctx, load16: { widen($0.loadUnaligned(fromByteOffset: $1, as: SIMD16<Float16>.self)) },
                    load1: { Float($0.loadUnaligned(fromByteOffset: $1, as: Float16.self)) })
    }

    @inline(never)
    public static func weightedSumF32(_ p: UnsafePointer<Float>, lanes: Int, heads: Int, rows: UnsafeRawPointer, rowBytes: Int,
                                      count: Int, rank: Int, scratch: UnsafeMutablePointer<Float>, into ctx: UnsafeMutablePointer<Float>) {
        weightedSum(p, lanes: lanes, heads: heads, rows: rows, rowBytes: rowBytes, count: count, rank: rank, elementBytes: 4,
                    into: ctx, load16: { $0.loadUnaligned(fromByteOffset: $1, as: SIMD16<Float>.self) },
                    load1: { $0.loadUnaligned(fromByteOffset: $1, as: Float.self) })
    }

    @inline(never)
    public static func weightedSumBF16(_ p: UnsafePointer<Float>, lanes: Int, heads: Int, rows: UnsafeRawPointer, rowBytes: Int,
                                       count: Int, rank: Int, scratch: UnsafeMutablePointer<Float>, into ctx: UnsafeMutablePointer<Float>) {
        weightedSum(p, lanes: lanes, heads: heads, rows: rows, rowBytes: rowBytes, count: count, rank: rank, elementBytes: 2,
                    into: ctx, load16: { row, offset in
                        SIMD16(widenBF16(row, offset / 2), widenBF16(row, offset / 2 + 1), widenBF16(row, offset / 2 + 2),
                               widenBF16(row, offset / 2 + 3), widenBF16(row, offset / 2 + 4), widenBF16(row, offset / 2 + 5),
                               widenBF16(row, offset / 2 + 6), widenBF16(row, offset / 2 + 7), widenBF16(row, offset / 2 + 8),
                               widenBF16(row, offset / 2 + 9), widenBF16(row, offset / 2 + 10), widenBF16(row, offset / 2 + 11),
                               widenBF16(row, offset / 2 + 12), widenBF16(row, offset / 2 + 13), widenBF16(row, offset / 2 + 14),
                               widenBF16(row, offset / 2 + 15))
                    }, load1: { widenBF16($0, $1 / 2) })
    }

    /// bf16 value `c` of `row` as a Float (exact: its bits are the Float's high half).
    @inline(__always)
    static func widenBF16(_ row: UnsafeRawPointer, _ c: Int) -> Float {
        Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: c &* 2, as: UInt16.self)) &<< 16)
    }

    // MARK: Register blocks

    /// The scores, `scoreRows` rows at a time; `view(row, i)` gives row `row` (the i-th of its
    /// block) as floats. A short last block repeats its last row (those sums are not stored).
    @inline(__always)
    private static func scores(_ qT: UnsafePointer<Float>, lanes: Int, rows: UnsafeRawPointer, rowBytes: Int, count: Int, width: Int,
                               into s: UnsafeMutablePointer<Float>, view: (UnsafeRawPointer, Int) -> UnsafePointer<Float>) {
        let laneBytes = lanes &* 4
        var j = 0
        while j < count {
            let n = min(scoreRows, count &- j)
            @inline(__always) func row(_ i: Int) -> UnsafePointer<Float> { view(rows + (j &+ min(i, n &- 1)) &* rowBytes, i) }
            let out = UnsafeMutableRawPointer(s + j &* lanes)
            @inline(__always) func store(_ a: SIMD16<Float>, _ i: Int, _ g: Int) {
                if i < n { out.storeBytes(of: a, toByteOffset: i &* laneBytes &+ g &* 4, as: SIMD16<Float>.self) }
            }
            #if DSV2_AVX512
            let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3), r4 = row(4), r5 = row(5), r6 = row(6), r7 = row(7)
            var g = 0
            while g < lanes {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var a4 = SIMD16<Float>(), a5 = SIMD16<Float>(), a6 = SIMD16<Float>(), a7 = SIMD16<Float>()
                var q = UnsafeRawPointer(qT + g)
                for c in 0..<width {
                    let qv = q.loadUnaligned(as: SIMD16<Float>.self)
                    a0.addProduct(qv, SIMD16(repeating: r0[c])); a1.addProduct(qv, SIMD16(repeating: r1[c]))
                    a2.addProduct(qv, SIMD16(repeating: r2[c])); a3.addProduct(qv, SIMD16(repeating: r3[c]))
                    a4.addProduct(qv, SIMD16(repeating: r4[c])); a5.addProduct(qv, SIMD16(repeating: r5[c]))
                    a6.addProduct(qv, SIMD16(repeating: r6[c])); a7.addProduct(qv, SIMD16(repeating: r7[c]))
                    q += laneBytes
                }
                store(a0, 0, g); store(a1, 1, g); store(a2, 2, g); store(a3, 3, g)
                store(a4, 4, g); store(a5, 5, g); store(a6, 6, g); store(a7, 7, g)
                g &+= 16
            }
            #else
            let r0 = row(0), r1 = row(1), r2 = row(2), r3 = row(3)
            var g = 0
            while g < lanes {
                var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
                var q = UnsafeRawPointer(qT + g)
                for c in 0..<width {
                    let qv = q.loadUnaligned(as: SIMD16<Float>.self)
                    a0.addProduct(qv, SIMD16(repeating: r0[c])); a1.addProduct(qv, SIMD16(repeating: r1[c]))
                    a2.addProduct(qv, SIMD16(repeating: r2[c])); a3.addProduct(qv, SIMD16(repeating: r3[c]))
                    q += laneBytes
                }
                store(a0, 0, g); store(a1, 1, g); store(a2, 2, g); store(a3, 3, g)
                g &+= 16
            }
            #endif
            j &+= n
        }
    }

    /// The weighted sum, `sumHeads` heads × 16 columns at a time (absent heads of a short last
    /// group accumulate padding lanes of p and are not stored), then the columns past the last
    /// multiple of 16 one by one.
    @inline(__always)
    private static func weightedSum(_ p: UnsafePointer<Float>, lanes: Int, heads: Int, rows: UnsafeRawPointer, rowBytes: Int,
                                    count: Int, rank: Int, elementBytes: Int, into ctx: UnsafeMutablePointer<Float>,
                                    load16: (UnsafeRawPointer, Int) -> SIMD16<Float>, load1: (UnsafeRawPointer, Int) -> Float) {
        let out = UnsafeMutableRawPointer(ctx), headBytes = rank &* 4
        var h = 0
        while h < heads {
            let n = min(sumHeads, heads &- h)
            @inline(__always) func load(_ k: Int, _ oc: Int) -> SIMD16<Float> {
                k < n ? out.loadUnaligned(fromByteOffset: (h &+ k) &* headBytes &+ oc, as: SIMD16<Float>.self) : SIMD16()
            }
            @inline(__always) func store(_ a: SIMD16<Float>, _ k: Int, _ oc: Int) {
                if k < n { out.storeBytes(of: a, toByteOffset: (h &+ k) &* headBytes &+ oc, as: SIMD16<Float>.self) }
            }
            var c = 0
            while c &+ 16 <= rank {
                let oc = c &* 4
                var row = rows + c &* elementBytes
                var w = p + h
                #if DSV2_AVX512
                var a0 = load(0, oc), a1 = load(1, oc), a2 = load(2, oc), a3 = load(3, oc)
                var a4 = load(4, oc), a5 = load(5, oc), a6 = load(6, oc), a7 = load(7, oc)
                for _ in 0..<count {
                    let r = load16(row, 0)
                    a0.addProduct(r, SIMD16(repeating: w[0])); a1.addProduct(r, SIMD16(repeating: w[1]))
                    a2.addProduct(r, SIMD16(repeating: w[2])); a3.addProduct(r, SIMD16(repeating: w[3]))
                    a4.addProduct(r, SIMD16(repeating: w[4])); a5.addProduct(r, SIMD16(repeating: w[5]))
                    a6.addProduct(r, SIMD16(repeating: w[6])); a7.addProduct(r, SIMD16(repeating: w[7]))
                    row += rowBytes
                    w += lanes
                }
                store(a0, 0, oc); store(a1, 1, oc); store(a2, 2, oc); store(a3, 3, oc)
                store(a4, 4, oc); store(a5, 5, oc); store(a6, 6, oc); store(a7, 7, oc)
                #else
                var a0 = load(0, oc), a1 = load(1, oc), a2 = load(2, oc), a3 = load(3, oc)
                for _ in 0..<count {
                    let r = load16(row, 0)
                    a0.addProduct(r, SIMD16(repeating: w[0])); a1.addProduct(r, SIMD16(repeating: w[1]))
                    a2.addProduct(r, SIMD16(repeating: w[2])); a3.addProduct(r, SIMD16(repeating: w[3]))
                    row += rowBytes
                    w += lanes
                }
                store(a0, 0, oc); store(a1, 1, oc); store(a2, 2, oc); store(a3, 3, oc)
                #endif
                c &+= 16
            }
            while c < rank {
                for k in 0..<n {
                    var sum = ctx[(h &+ k) &* rank &+ c]
                    for j in 0..<count {
                        sum = sum.addingProduct(p[j &* lanes &+ h &+ k], load1(rows + j &* rowBytes, c &* elementBytes))
                    }
                    ctx[(h &+ k) &* rank &+ c] = sum
                }
                c &+= 1
            }
            h &+= sumHeads
        }
    }

    /// `count` f16 values at `row` as floats into `out`, 16 at a time.
    @inline(__always)
    static func widen(_ row: UnsafeRawPointer, count: Int, into out: UnsafeMutablePointer<Float>) {
        let o = UnsafeMutableRawPointer(out)
        var c = 0
        while c &+ 16 <= count {
            o.storeBytes(of: widen(row.loadUnaligned(fromByteOffset: c &* 2, as: SIMD16<Float16>.self)),
                         toByteOffset: c &* 4, as: SIMD16<Float>.self)
            c &+= 16
        }
        while c < count {
            out[c] = Float(row.loadUnaligned(fromByteOffset: c &* 2, as: Float16.self))
            c &+= 1
        }
    }

    /// Lane-wise Float16 → Float, written per lane: LLVM turns it into vcvtph2ps (the standard
    /// library's vector conversion initialiser would be a per-lane library loop).
    @inline(__always)
    static func widen(_ h: SIMD16<Float16>) -> SIMD16<Float> {
        SIMD16(Float(h[0]), Float(h[1]), Float(h[2]), Float(h[3]), Float(h[4]), Float(h[5]), Float(h[6]), Float(h[7]),
               Float(h[8]), Float(h[9]), Float(h[10]), Float(h[11]), Float(h[12]), Float(h[13]), Float(h[14]), Float(h[15]))
    }
}
