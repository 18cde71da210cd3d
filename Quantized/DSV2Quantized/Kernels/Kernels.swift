/// Matrix-vector (decode) and matrix-matrix (prefill) products with f32 activations in and f32
/// out, for every `WeightType`. The serial entry points compute a range of output rows; the
/// `WorkerPool` variants split the rows over threads. A row's dot product is always computed
/// whole by one thread with the same code, so results do not depend on the thread count.
///
/// q8/q4 weights multiply int8-quantized activations (`PreparedActivations`, quantize once per
/// input and reuse across matrices); f32/f16/bf16 weights multiply the f32 activations.
public enum Kernels {
    /// y[r] = Σ_c W[r, c] · x[token, c] for r in `rows` (default: all). `y` is indexed by the
    /// absolute row, so threads can fill disjoint ranges of one output.
    public static func matvec(_ w: QuantizedMatrix, _ x: PreparedActivations, token: Int = 0,
                              into y: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
        precondition(x.columns == w.columns, "matvec: matrix has \(w.columns) columns, activations \(x.columns)")
        precondition(token >= 0 && token < x.tokens, "matvec: token \(token) outside 0..<\(x.tokens)")
        let range = rows ?? 0..<w.rows
        precondition(range.lowerBound >= 0 && range.upperBound <= w.rows, "matvec: rows \(range) outside 0..<\(w.rows)")
        rowDots(w, x, token: token, into: y, rows: range)
    }

    /// Convenience: prepares `x` [columns] and multiplies (use `PreparedActivations` directly
    /// when the same input meets several matrices).
    public static func matvec(_ w: QuantizedMatrix, _ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) {
        matvec(w, PreparedActivations(x, columns: w.columns), into: y)
    }

    /// Y[t, r] = Σ_c W[r, c] · X[t, c] for every token t and r in `rows` (default: all);
    /// Y is [x.tokens, w.rows] row-major. Works on tiles of rows small enough to stay in L1/L2
    /// while every token passes over them, so the weights are read from memory once.
    public static func matmul(_ w: QuantizedMatrix, _ x: PreparedActivations,
                              into y: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
        precondition(x.columns == w.columns, "matmul: matrix has \(w.columns) columns, activations \(x.columns)")
        let range = rows ?? 0..<w.rows
        precondition(range.lowerBound >= 0 && range.upperBound <= w.rows, "matmul: rows \(range) outside 0..<\(w.rows)")
        let tileRows = max(1, matmulTileBytes / max(1, w.rowStride))
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start &+ tileRows, range.upperBound)
            for t in 0..<x.tokens {
                rowDots(w, x, token: t, into: y + t &* w.rows, rows: start..<end)
            }
            start = end
        }
    }

    /// Weight bytes per mat-mat tile: fits L1 with room for the activations' stream.
    static let matmulTileBytes = 16 * 1024

    /// The row loop, one specialised loop per weight type (the switch stays outside the loop).
    @inline(__always)
    static func rowDots(_ w: QuantizedMatrix, _ x: PreparedActivations, token: Int,
                        into y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let stride = w.rowStride
        switch w.type {
        case .q8:
            let blocks = w.blocksPerRow, a = x.q8Pointer(token), s = x.scalePointer(token)
            for r in rows {
                y[r] = RowDot.q8(w.data + r &* stride, w.scales + r &* blocks &* 2, a, s, blocks: blocks)
            }
        case .q4:
            let blocks = w.blocksPerRow, a = x.q4Pointer(token), s = x.scalePointer(token)
            let c = x.correctionPointer(token)
            for r in rows {
                y[r] = RowDot.q4(w.data + r &* stride, w.scales + r &* blocks &* 2, a, s, c, blocks: blocks)
            }
        case .f32:
            let f = x.floatPointer(token)
            for r in rows { y[r] = RowDot.f32(w.data + r &* stride, f, columns: w.columns) }
        case .f16:
            let f = x.floatPointer(token)
            for r in rows { y[r] = RowDot.f16(w.data + r &* stride, f, columns: w.columns) }
        case .bf16:
            let f = x.floatPointer(token), e = x.evenOddPointer(token)
            for r in rows { y[r] = RowDot.bf16(w.data + r &* stride, f, e, columns: w.columns) }
        }
    }
}
