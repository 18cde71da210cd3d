/// Attention of one token over its latent cache rows, split into blocks of rows that can run on
/// different threads and are merged at the end (flash-decoding): each block keeps, per head, its
/// largest score m, the sum l of exp(score − m) and the unnormalised context Σ exp(score − m)·c;
/// the merge rescales the blocks to their common maximum (a log-sum-exp merge).
///
/// **Same numbers for any thread count.** The partition of the rows into blocks depends only on
/// the number of rows the token sees (`blockRows(visible:)`), each block is computed whole by one
/// thread, and the merge runs the blocks in order. Threads only change who computes a block.
///
/// Within a block, rows run in tiles of `tileRows` (they stay in the L2 cache between the score
/// product and the weighted sum), with the usual online-softmax rescaling between tiles.
public enum LatentAttention {
    /// Blocks per token at most (enough to share one token's rows among the threads of a
    /// machine this engine targets; more would only add partial results to merge).
    public static let maximumBlocks = 32
    /// Rows per block at least (a multiple of the products' register blocks).
    public static let minimumBlockRows = 64
    /// Rows per tile within a block: 256 rows of 576 f16 values are 288 KiB, in L2.
    public static let tileRows = 256

    /// Rows per block for a token that sees `visible` rows: at least `minimumBlockRows`, a
    /// multiple of it, and at most `maximumBlocks` blocks. A function of `visible` only.
    public static func blockRows(visible: Int) -> Int {
        let even = (visible + maximumBlocks - 1) / maximumBlocks
        return max(minimumBlockRows, (even + minimumBlockRows - 1) / minimumBlockRows * minimumBlockRows)
    }

    public static func blockCount(visible: Int) -> Int {
        let rows = blockRows(visible: visible)
        return (visible + rows - 1) / rows
    }

    /// The dimensions of one layer's attention core.
    public struct Shape: Sendable, Equatable {
        public let heads: Int
        /// Heads rounded up to whole vectors (`LatentAttentionKernels.lanes`).
        public let lanes: Int
        /// kv_lora_rank: the columns of c_KV, which the weighted sum reads.
        public let rank: Int
        /// kv_lora_rank + qk_rope_head_dim: the columns of a cache row, which the scores read.
        public let width: Int

        public init(heads: Int, rank: Int, width: Int) {
            self.heads = heads
            lanes = LatentAttentionKernels.lanes(heads: heads)
            self.rank = rank
            self.width = width
        }

        /// Floats of one block's partial result: [m (lanes) | l (lanes) | context (heads × rank)].
        public var partialFloats: Int { 2 * lanes + heads * rank }
        /// Floats of the per-thread scratch of `block`: a tile of scores and the products' scratch.
        public var scratchFloats: Int {
            LatentAttention.tileRows * lanes + LatentAttentionProducts.scratchFloats(width: width, lanes: lanes)
        }
        /// Floats of a token's query qᵀ [width, lanes].
        public var queryFloats: Int { width * lanes }
    }

    /// The partial result of the block of rows `range` (rows at base + j·rowBytes) for the query
    /// qᵀ ([width, lanes], scaled by the softmax scale, padding lanes 0), into `partial`.
    /// `scratch` holds `shape.scratchFloats` floats; `tile` (tests only) lowers `tileRows`.
    public static func block(_ products: LatentAttentionProducts, shape: Shape, query qT: UnsafePointer<Float>,
                             rows base: UnsafeRawPointer, rowBytes: Int, range: Range<Int>,
                             scratch: UnsafeMutablePointer<Float>, into partial: UnsafeMutablePointer<Float>,
                             tile: Int = tileRows) {
        let lanes = shape.lanes, heads = shape.heads, rank = shape.rank
        let maxima = UnsafeMutableRawPointer(partial), sums = UnsafeMutableRawPointer(partial + lanes)
        let context = partial + 2 * lanes
        precondition(tile >= 1 && tile <= tileRows, "tiles of 1 ... \(tileRows) rows")
        let scores = scratch, productScratch = scratch + tileRows * lanes
        context.update(repeating: 0, count: heads * rank)
        var start = range.lowerBound
        while start < range.upperBound {
            let count = min(tile, range.upperBound - start)
            let rows = base + start * rowBytes
            products.scores(qT, lanes, rows, rowBytes, count, shape.width, productScratch, scores)
            let first = start == range.lowerBound
            let s = UnsafeMutableRawPointer(scores)
            var g = 0
            while g < lanes {
                let offset = g &* 4, stride = lanes &* 4
                var tileMax = s.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                for j in 1..<count {
                    tileMax = VectorMath.maximum(tileMax, s.loadUnaligned(fromByteOffset: offset &+ j &* stride, as: SIMD16<Float>.self))
                }
                var m = tileMax, l = SIMD16<Float>()
                if !first {
                    // Online softmax: rescale what the earlier tiles summed to the new maximum.
                    let old = maxima.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self)
                    m = VectorMath.maximum(old, tileMax)
                    let alpha = VectorMath.exp(old - m)
                    l = sums.loadUnaligned(fromByteOffset: offset, as: SIMD16<Float>.self) * alpha
                    for k in 0..<min(LatentAttentionKernels.headLanes, heads - g) {
                        scale(context + (g + k) * rank, count: rank, by: alpha[k])
                    }
                }
                for j in 0..<count {
                    let at = offset &+ j &* stride
                    let p = VectorMath.exp(s.loadUnaligned(fromByteOffset: at, as: SIMD16<Float>.self) - m)
                    s.storeBytes(of: p, toByteOffset: at, as: SIMD16<Float>.self)
                    l += p
                }
                maxima.storeBytes(of: m, toByteOffset: offset, as: SIMD16<Float>.self)
                sums.storeBytes(of: l, toByteOffset: offset, as: SIMD16<Float>.self)
                g &+= LatentAttentionKernels.headLanes
            }
            products.weightedSum(scores, lanes, heads, rows, rowBytes, count, rank, productScratch, context)
            start += count
        }
    }

    /// Head `head`'s attention output over c_KV (rank values) from the partial results of a
    /// token's `blocks` blocks (consecutive, `shape.partialFloats` apart), merged in block order:
    /// Σ_b e^(m_b − M)·context_b / Σ_b e^(m_b − M)·l_b with M the largest m_b.
    public static func merge(shape: Shape, partials: UnsafePointer<Float>, blocks: Int, head: Int,
                             into out: UnsafeMutablePointer<Float>) {
        let stride = shape.partialFloats, lanes = shape.lanes, rank = shape.rank
        var largest = partials[head]
        for b in 1..<max(1, blocks) { largest = max(largest, partials[b * stride + head]) }
        out.update(repeating: 0, count: rank)
        var total: Float = 0
        for b in 0..<blocks {
            let partial = partials + b * stride
            let weight = VectorMath.exp(SIMD16(repeating: partial[head] - largest))[0]
            total = total.addingProduct(weight, partial[lanes + head])
            addScaled(partial + 2 * lanes + head * rank, weight, into: out, count: rank)
        }
        scale(out, count: rank, by: 1 / total)
    }

    /// x[0..<count] *= factor.
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        let raw = UnsafeMutableRawPointer(x), f = SIMD16<Float>(repeating: factor)
        var c = 0
        while c &+ 16 <= count {
            raw.storeBytes(of: raw.loadUnaligned(fromByteOffset: c &* 4, as: SIMD16<Float>.self) * f,
                           toByteOffset: c &* 4, as: SIMD16<Float>.self)
            c &+= 16
        }
        while c < count { x[c] *= factor; c &+= 1 }
    }

    /// out[0..<count] += weight · x (fused).
    @inline(__always)
    static func addScaled(_ x: UnsafePointer<Float>, _ weight: Float, into out: UnsafeMutablePointer<Float>, count: Int) {
        let source = UnsafeRawPointer(x), raw = UnsafeMutableRawPointer(out), w = SIMD16<Float>(repeating: weight)
        var c = 0
        while c &+ 16 <= count {
            let o = raw.loadUnaligned(fromByteOffset: c &* 4, as: SIMD16<Float>.self)
            raw.storeBytes(of: o.addingProduct(source.loadUnaligned(fromByteOffset: c &* 4, as: SIMD16<Float>.self), w),
                           toByteOffset: c &* 4, as: SIMD16<Float>.self)
            c &+= 16
        }
        while c < count { out[c] = out[c].addingProduct(x[c], weight); c &+= 1 }
    }
}
