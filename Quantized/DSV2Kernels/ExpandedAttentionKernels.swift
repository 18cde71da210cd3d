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
            key < unmaskedEnd ? a * scaleVector : VectorMath.select(positions .< SIMD16(repeating: Float(key)), minusInfinity, a * scaleVector)
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
        for j in 0..<count { tileMax = VectorMath.maximum(tileMax, s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self)) }
        let m = st.load(as: SIMD16<Float>.self)
        let mNew = VectorMath.maximum(m, tileMax)
        let correction = VectorMath.exp(m - mNew)
        var sum = SIMD16<Float>()
        for j in 0..<count {
            let p = VectorMath.exp(s.load(fromByteOffset: j &* 64, as: SIMD16<Float>.self) - mNew)
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

    /// `count` f16, bf16 or f32 values at `row` as floats, exactly (a cached latent row for the
    /// up-projection).
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
        case .bf16:
            // A bf16 value is the high half of a Float's bits.
            let o = UnsafeMutableRawPointer(out)
            var i = 0
            while i &+ 16 <= count {
                let bits = SIMD16<UInt32>(truncatingIfNeeded: row.loadUnaligned(fromByteOffset: i &* 2, as: SIMD16<UInt16>.self))
                o.storeBytes(of: unsafeBitCast(bits &<< 16, to: SIMD16<Float>.self), toByteOffset: i &* 4, as: SIMD16<Float>.self)
                i &+= 16
            }
            while i < count {
                out[i] = Float(bitPattern: UInt32(row.loadUnaligned(fromByteOffset: i &* 2, as: UInt16.self)) &<< 16)
                i &+= 1
            }
        default:
            preconditionFailure("cached latents are f16, bf16 or f32, not \(type)")
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
}
