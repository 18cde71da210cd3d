import DSV2Formats

/// Matrix-vector (decode) and matrix-matrix (prefill) products with f32 activations in and f32
/// out, for every `WeightType`. The serial entry points compute a range of output rows; the
/// `WorkerPool` variants split the rows over threads. A row's dot product is always computed
/// whole by one thread with the same code, so results do not depend on the thread count.
///
/// q8/q4 weights multiply int8-quantized activations (`PreparedActivations`, quantized once per
/// input and reused across matrices); f32/f16/bf16 weights multiply the f32 activations. The
/// kernels are those of the `KernelTable` the activations were prepared for (by default the
/// one chosen for this CPU).
public enum Kernels {
    /// y[r] = Σ_c W[r, c] · x[token, c] for r in `rows` (default: all). `y` is indexed by the
    /// absolute row, so threads can fill disjoint ranges of one output.
    public static func matvec(_ w: QuantizedMatrix, _ x: PreparedActivations, token: Int = 0,
                              into y: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
        precondition(x.columns == w.columns, "matvec: matrix has \(w.columns) columns, activations \(x.columns)")
        precondition(token >= 0 && token < x.tokens, "matvec: token \(token) outside 0..<\(x.tokens)")
        let range = rows ?? 0..<w.rows
        precondition(range.lowerBound >= 0 && range.upperBound <= w.rows, "matvec: rows \(range) outside 0..<\(w.rows)")
        x.kernels[w.type].rowDots(w, x, token, y, range)
    }

    /// Convenience: prepares `x` [columns] and multiplies (use `PreparedActivations` directly
    /// when the same input meets several matrices).
    public static func matvec(_ w: QuantizedMatrix, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        matvec(w, PreparedActivations(x, columns: w.columns), into: y)
    }

    /// Y[t, r] = Σ_c W[r, c] · X[t, c] for every token t and r in `rows` (default: all);
    /// Y is [x.tokens, w.rows] row-major. Works on tiles of rows small enough to stay in L1/L2
    /// while every token passes over them, so the weights are read from memory once; q8/q4 run
    /// several tokens at a time through the table's micro-kernels (the rest one by one),
    /// bit-identical to mat-vec per token. One token is a mat-vec.
    public static func matmul(_ w: QuantizedMatrix, _ x: PreparedActivations,
                              into y: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
        precondition(x.columns == w.columns, "matmul: matrix has \(w.columns) columns, activations \(x.columns)")
        let range = rows ?? 0..<w.rows
        precondition(range.lowerBound >= 0 && range.upperBound <= w.rows, "matmul: rows \(range) outside 0..<\(w.rows)")
        let kernels = x.kernels[w.type]
        if x.tokens == 1 {
            kernels.rowDots(w, x, 0, y, range)
            return
        }
        let tileRows = max(1, matmulTileBytes / max(1, w.rowStride))
        let blocks = w.blocksPerRow, stride = w.rowStride, scaleStride = blocks &* 2, n = w.rows
        // The micro-kernels' token planes, once for the whole product.
        withUnsafeTemporaryAllocation(of: UnsafeRawPointer.self, capacity: kernels.microKernels.isEmpty ? 0 : 3 &* x.tokens) { planes in
            if !kernels.microKernels.isEmpty { x.tokenPlanes(kernels.layout, into: planes.baseAddress!) }
            var start = range.lowerBound
            while start < range.upperBound {
                let tile = start..<min(start &+ tileRows, range.upperBound)
                var t = 0
                for micro in kernels.microKernels {
                    while t &+ micro.tokens <= x.tokens {
                        let p = UnsafePointer(planes.baseAddress! + 3 &* t)
                        for r in tile {
                            let v = micro.dot(w.data + r &* stride, w.scales + r &* scaleStride, p, blocks)
                            for k in 0..<micro.tokens { y[(t &+ k) &* n &+ r] = v[k] }
                        }
                        t &+= micro.tokens
                    }
                }
                while t < x.tokens {
                    kernels.rowDots(w, x, t, y + t &* n, tile)
                    t &+= 1
                }
                start = tile.upperBound
            }
        }
    }

    /// Weight bytes per mat-mat tile: fits L1 with room for the activations' stream. (8 KiB was
    /// ~9% slower on q8 mat-mat; 32 and 64 KiB measured the same as 16 within noise.)
    static let matmulTileBytes = 16 * 1024
}
