import DSV2Formats

/// The attention core of MLA's expanded form for a block of queries (FlashAttention-style):
/// 16 queries of one head, one per SIMD lane, meet the keys one tile at a time, and a running
/// maximum m, sum l and unnormalised output O per query replace the score matrix:
///   s_j   = scale · (q · k_j)                     (masked: −∞ past the query's position)
///   m'    = max(m, max_j s_j),  c = e^(m − m'),  p_j = e^(s_j − m')
///   l'    = c·l + Σ_j p_j,      O' = c·O + Σ_j p_j v_j,      finally o = O / l.
///
/// Every lane runs the same operations in the same order (fused multiply-adds over d, then
/// over j), so a query's result depends only on its own position, the keys and the tile
/// boundaries: not on the other lanes, the block or the thread that computes it. Swift SIMD
/// only (the same code on every kernel path).
public enum ExpandedAttentionKernels {
    /// Queries per block: one per lane of `SIMD16<Float>`.
    public static let lanes = 16
    /// Floats of one query block's running state: m (16), l (16), then O transposed [vDim][16].
    public static func stateFloats(vDim: Int) -> Int { (2 + vDim) * lanes }

    /// One query block against `count` consecutive keys (positions firstKey ..< firstKey + count)
    /// of one head; updates `state` (m, l, Oᵀ; initialise with `resetState`).
    /// - queriesT: the queries transposed, [nope + rope][16] (row d holds component d of every lane).
    /// - positions: each lane's position (a lane sees the keys at positions ≤ it).
    /// - keys: k^C of the first key (`nope` floats), the next one `keyStride` floats further;
    ///   ropeKeys: its k^R (`rope` floats, stride `ropeStride`); values: its v (`vDim` floats,
    ///   stride `valueStride`).
    /// - scores: scratch of count × 16 floats.
    public static func attend(queriesT: UnsafePointer<Float>, positions: SIMD16<Float>, nope: Int, rope: Int,
                              keys: UnsafePointer<Float>, keyStride: Int,
                              ropeKeys: UnsafePointer<Float>, ropeStride: Int,
                              values: UnsafePointer<Float>, valueStride: Int, vDim: Int,
                              firstKey: Int, count: Int, scale: Float,
                              scores: UnsafeMutablePointer<Float>, state: UnsafeMutablePointer<Float>) {
        let q = UnsafeRawPointer(queriesT), s = UnsafeMutableRawPointer(scores)
        let scaleVector = SIMD16<Float>(repeating: scale)
        // Keys past the first lane's position exist only in the tile on the diagonal.
        let unmaskedEnd = Int(positions.min()) &+ 1
        let minusInfinity = SIMD16<Float>(repeating: -.infinity)
        @inline(__always) func masked(_ a: SIMD16<Float>, key: Int) -> SIMD16<Float> {
            key < unmaskedEnd ? a * scaleVector : select(positions .< SIMD16(repeating: Float(key)), minusInfinity, a * scaleVector)
        }
        // Scores, four keys at a time (8 accumulators on AVX2's 16 registers), then one by one.
        var j = 0
        while j &+ 4 <= count {
            let k0 = keys + j &* keyStride, k1 = k0 + keyStride, k2 = k1 + keyStride, k3 = k2 + keyStride
            var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
            for d in 0..<nope {
                let qd = q.loadUnaligned(fromByteOffset: d &* 64, as: SIMD16<Float>.self)
                a0.addProduct(qd, SIMD16(repeating: k0[d]))
                a1.addProduct(qd, SIMD16(repeating: k1[d]))
                a2.addProduct(qd, SIMD16(repeating: k2[d]))
                a3.addProduct(qd, SIMD16(repeating: k3[d]))
            }
            let r0 = ropeKeys + j &* ropeStride, r1 = r0 + ropeStride, r2 = r1 + ropeStride, r3 = r2 + ropeStride
            for d in 0..<rope {
                let qd = q.loadUnaligned(fromByteOffset: (nope &+ d) &* 64, as: SIMD16<Float>.self)
                a0.addProduct(qd, SIMD16(repeating: r0[d]))
                a1.addProduct(qd, SIMD16(repeating: r1[d]))
                a2.addProduct(qd, SIMD16(repeating: r2[d]))
                a3.addProduct(qd, SIMD16(repeating: r3[d]))
            }
            let key = firstKey &+ j
            s.storeBytes(of: masked(a0, key: key), toByteOffset: j &* 64, as: SIMD16<Float>.self)
            s.storeBytes(of: masked(a1, key: key &+ 1), toByteOffset: (j &+ 1) &* 64, as: SIMD16<Float>.self)
            s.storeBytes(of: masked(a2, key: key &+ 2), toByteOffset: (j &+ 2) &* 64, as: SIMD16<Float>.self)
            s.storeBytes(of: masked(a3, key: key &+ 3), toByteOffset: (j &+ 3) &* 64, as: SIMD16<Float>.self)
            j &+= 4
        }
        while j < count {
            let k0 = keys + j &* keyStride, r0 = ropeKeys + j &* ropeStride
            var a0 = SIMD16<Float>()
            for d in 0..<nope { a0.addProduct(q.loadUnaligned(fromByteOffset: d &* 64, as: SIMD16<Float>.self), SIMD16(repeating: k0[d])) }
            for d in 0..<rope {
                a0.addProduct(q.loadUnaligned(fromByteOffset: (nope &+ d) &* 64, as: SIMD16<Float>.self), SIMD16(repeating: r0[d]))
            }
            s.storeBytes(of: masked(a0, key: firstKey &+ j), toByteOffset: j &* 64, as: SIMD16<Float>.self)
            j &+= 1
        }

        // Online softmax. Every lane sees key 0 in the first tile it meets, so m' is finite and
        // c = e^(−∞) = 0 clears the initial state.
        let st = UnsafeMutableRawPointer(state)
        var tileMax = SIMD16<Float>(repeating: -.infinity)
        for j in 0..<count { tileMax = maximum(tileMax, s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self)) }
        let m = st.load(as: SIMD16<Float>.self)
        let mNew = maximum(m, tileMax)
        let correction = exp(m - mNew)
        var sum = SIMD16<Float>()
        for j in 0..<count {
            let p = exp(s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self) - mNew)
            s.storeBytes(of: p, toByteOffset: j &* 64, as: SIMD16<Float>.self)
            sum += p
        }
        st.storeBytes(of: mNew, as: SIMD16<Float>.self)
        st.storeBytes(of: st.load(fromByteOffset: 64, as: SIMD16<Float>.self) * correction + sum, toByteOffset: 64,
                      as: SIMD16<Float>.self)

        // Oᵀ[c] = c·Oᵀ[c] + Σ_j p_j v_j[c], four value components at a time.
        let o = st + 128
        var c = 0
        while c &+ 4 <= vDim {
            var o0 = o.load(fromByteOffset: c &* 64, as: SIMD16<Float>.self) * correction
            var o1 = o.load(fromByteOffset: (c &+ 1) &* 64, as: SIMD16<Float>.self) * correction
            var o2 = o.load(fromByteOffset: (c &+ 2) &* 64, as: SIMD16<Float>.self) * correction
            var o3 = o.load(fromByteOffset: (c &+ 3) &* 64, as: SIMD16<Float>.self) * correction
            var v = values + c
            for j in 0..<count {
                let p = s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self)
                o0.addProduct(p, SIMD16(repeating: v[0]))
                o1.addProduct(p, SIMD16(repeating: v[1]))
                o2.addProduct(p, SIMD16(repeating: v[2]))
                o3.addProduct(p, SIMD16(repeating: v[3]))
                v += valueStride
            }
            o.storeBytes(of: o0, toByteOffset: c &* 64, as: SIMD16<Float>.self)
            o.storeBytes(of: o1, toByteOffset: (c &+ 1) &* 64, as: SIMD16<Float>.self)
            o.storeBytes(of: o2, toByteOffset: (c &+ 2) &* 64, as: SIMD16<Float>.self)
            o.storeBytes(of: o3, toByteOffset: (c &+ 3) &* 64, as: SIMD16<Float>.self)
            c &+= 4
        }
        while c < vDim {
            var o0 = o.load(fromByteOffset: c &* 64, as: SIMD16<Float>.self) * correction
            var v = values + c
            for j in 0..<count {
                o0.addProduct(s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self), SIMD16(repeating: v[0]))
                v += valueStride
            }
            o.storeBytes(of: o0, toByteOffset: c &* 64, as: SIMD16<Float>.self)
            c &+= 1
        }
    }

    /// m = −∞, l = 0, O = 0.
    public static func resetState(_ state: UnsafeMutablePointer<Float>, vDim: Int) {
        state.update(repeating: -.infinity, count: lanes)
        (state + lanes).update(repeating: 0, count: (1 + vDim) * lanes)
    }

    /// o = O / l of lane `lane`, into `output` (`vDim` floats).
    public static func finish(_ state: UnsafePointer<Float>, lane: Int, vDim: Int, into output: UnsafeMutablePointer<Float>) {
        let l = state[lanes &+ lane], o = state + (2 &* lanes &+ lane)
        for c in 0..<vDim { output[c] = o[c &* lanes] / l }
    }

    /// `count` f16 or f32 values at `row` as floats (a cached latent row for the up-projection).
    public static func widen(_ row: UnsafeRawPointer, count: Int, type: WeightType, into out: UnsafeMutablePointer<Float>) {
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: row, byteCount: count &* 4)
        case .f16:
            let o = UnsafeMutableRawPointer(out)
            var i = 0
            while i &+ 16 <= count {
                o.storeBytes(of: RowDot.widen(row.loadUnaligned(fromByteOffset: i &* 2, as: SIMD16<Float16>.self)),
                             toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < count {
                out[i] = Float(row.loadUnaligned(fromByteOffset: i &* 2, as: Float16.self))
                i &+= 1
            }
        default:
            preconditionFailure("cached latents are f16 or f32, not \(type)")
        }
    }

    /// x − (x as the int8 kernels see it) for `count` values: per block of 32, x minus its
    /// activation quantization (`ScalarQuantization.quantizeActivationBlock`, the spec), d·q.
    public static func quantizationResidual(_ x: UnsafePointer<Float>, count: Int, into out: UnsafeMutablePointer<Float>) {
        withUnsafeTemporaryAllocation(of: Int8.self, capacity: WeightType.blockSize) { buffer in
            let q = buffer.baseAddress!
            var start = 0
            while start < count {
                let n = min(WeightType.blockSize, count - start)
                let d = ScalarQuantization.quantizeActivationBlock(x + start, count: n, into: q)
                for i in 0..<n { out[start + i] = x[start + i] - d * Float(q[i]) }
                start += n
            }
        }
    }

    /// Lanes of `a` where `mask` is set, else of `b`, by bit operations: the standard library's
    /// `replacing(with:where:)` and `pointwiseMax` compile to a loop over the lanes.
    @inline(__always)
    static func select(_ mask: SIMDMask<SIMD16<Int32>>, _ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> {
        let m = unsafeBitCast(mask, to: SIMD16<Int32>.self)
        return unsafeBitCast((unsafeBitCast(a, to: SIMD16<Int32>.self) & m) | (unsafeBitCast(b, to: SIMD16<Int32>.self) & ~m),
                             to: SIMD16<Float>.self)
    }

    /// The larger of each pair of lanes (no NaNs here).
    @inline(__always)
    static func maximum(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { select(a .< b, b, a) }

    /// e^x for 16 lanes: x = n·ln 2 + r with |r| ≤ ln 2 / 2 (ln 2 in two parts, so r is exact to
    /// float precision), e^r by the degree-7 polynomial 1 + r + r²·P(r) of Cephes' expf (within
    /// about 1 ulp), 2^n built in the exponent bits. Exactly 1 at 0; 0 below about −87.3, where
    /// 2^n would be subnormal (e^x < 2^-126 is negligible next to the softmax's sum ≥ 1), and at
    /// −∞; the arguments here are ≤ 0.
    @inline(__always)
    public static func exp(_ x: SIMD16<Float>) -> SIMD16<Float> {
        let low = SIMD16<Float>(repeating: -104), high = SIMD16<Float>(repeating: 88)
        let clamped = select(x .< low, low, select(high .< x, high, x))
        // Adding 1.5·2²³ rounds x·log₂e to an integer n held in the low mantissa bits.
        let magic = SIMD16<Float>(repeating: 12_582_912)
        let shifted = clamped * SIMD16(repeating: 1.442_695_04) + magic
        let n = shifted - magic
        var r = clamped
        r.addProduct(n, SIMD16(repeating: -0.693_359_375))
        r.addProduct(n, SIMD16(repeating: 2.121_944_4e-4))
        var p = SIMD16<Float>(repeating: 1.987_569_15e-4)
        p = p * r + SIMD16(repeating: 1.398_199_95e-3)
        p = p * r + SIMD16(repeating: 8.333_451_9e-3)
        p = p * r + SIMD16(repeating: 4.166_579_59e-2)
        p = p * r + SIMD16(repeating: 1.666_666_55e-1)
        p = p * r + SIMD16(repeating: 5.000_000_12e-1)
        let er = p * (r * r) + r + SIMD16(repeating: 1)
        // 2^n: (n + 127) << 23, with n = bits(shifted) − bits(magic) (same binade).
        let biased = unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- SIMD16(repeating: 0x4B40_0000 - 127)
        // A biased exponent ≤ 0 (n < −126) gives 0: the sign bit of `biased` clears the lane.
        let twoN = unsafeBitCast((biased &<< 23) & ~(biased &>> 31), to: SIMD16<Float>.self)
        return er * twoN
    }
}
