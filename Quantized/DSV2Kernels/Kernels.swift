import CKernelSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
#if arch(x86_64)
import DSV2KernelsVNNI
import DSV2Formats
#endif

/// Matrix-vector (decode) and matrix-matrix (prefill) products with f32 activations in and f32
/// out, for every `WeightType`. The serial entry points compute a range of output rows; the
/// `WorkerPool` variants split the rows over threads. A row's dot product is always computed
/// whole by one thread with the same code, so results do not depend on the thread count.
///
/// q8/q4 weights multiply int8-quantized activations (`PreparedActivations`, quantize once per
/// input and reuse across matrices); f32/f16/bf16 weights multiply the f32 activations.
///
/// The q8/q4 integer kernels come in three versions (`IntegerPath`): portable Swift SIMD,
/// AVX2 (`RowDotAVX2`, the x86-64-v3 baseline) and AVX-VNNI (`RowDotVNNI` in module
/// DSV2KernelsVNNI, used when `dsv2_cpu_has_avx_vnni()` says so). AVX2 and VNNI results are
/// bit-identical, so output does not depend on which of the two a machine has.
public enum Kernels {
    /// Throws `KernelError.unsupportedCPU` when this x86-64 CPU cannot run the build (compiled
    /// for x86-64-v3): call once at start-up to fail with a message instead of SIGILL.
    public static func checkCPU() throws {
        #if arch(x86_64)
        if dsv2_cpu_has_avx2_fma_f16c() == 0 { throw KernelError.unsupportedCPU }
        #endif
    }

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
    /// while every token passes over them, so the weights are read from memory once; q8/q4 run
    /// six (q8 with VNNI) or four tokens at a time through a micro-kernel (the rest one by
    /// one), bit-identical to mat-vec per token.
    public static func matmul(_ w: QuantizedMatrix, _ x: PreparedActivations,
                              into y: UnsafeMutablePointer<Float>, rows: Range<Int>? = nil) {
        precondition(x.columns == w.columns, "matmul: matrix has \(w.columns) columns, activations \(x.columns)")
        let range = rows ?? 0..<w.rows
        precondition(range.lowerBound >= 0 && range.upperBound <= w.rows, "matmul: rows \(range) outside 0..<\(w.rows)")
        let tileRows = max(1, matmulTileBytes / max(1, w.rowStride))
        let path = integerPath
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start &+ tileRows, range.upperBound)
            var t = 0
            #if arch(x86_64)
            // Six or four tokens per pass over the tile's rows (q8/q4 micro-kernels): each
            // weight vector is loaded (and its nibbles unpacked, or |w| formed) once for them all.
            while t &+ 6 <= x.tokens && sixTokens(w, x, token: t, into: y, rows: start..<end, path: path) {
                t &+= 6
            }
            while t &+ 4 <= x.tokens && fourTokens(w, x, token: t, into: y, rows: start..<end, path: path) {
                t &+= 4
            }
            #endif
            while t < x.tokens {
                rowDots(w, x, token: t, into: y + t &* w.rows, rows: start..<end)
                t &+= 1
            }
            start = end
        }
    }

    #if arch(x86_64)
    /// Tokens `token ..< token + 6`, rows `rows` with the six-token micro-kernel (q8 on the VNNI
    /// path only: the AVX2 and q4 micro-kernels need more registers per token); false (nothing
    /// done) otherwise. Bit-identical to six `rowDots`.
    @inline(__always)
    static func sixTokens(_ w: QuantizedMatrix, _ x: PreparedActivations, token t: Int,
                          into y: UnsafeMutablePointer<Float>, rows: Range<Int>, path: IntegerPath) -> Bool {
        guard w.type == .q8 && path == .vnni else { return false }
        let blocks = w.blocksPerRow, stride = w.rowStride, n = w.rows
        func token(_ k: Int) -> RowDotVNNI.Token {
            RowDotVNNI.Token(a: x.q8OffsetPointer(k), s: x.scalePointer(k), c: x.correctionPointer(k))
        }
        let group = (token(t), token(t &+ 1), token(t &+ 2), token(t &+ 3), token(t &+ 4), token(t &+ 5))
        for r in rows {
            let v = RowDotVNNI.q8x6(w.data + r &* stride, w.scales + r &* blocks &* 2, group, blocks: blocks)
            y[t &* n &+ r] = v[0]
            y[(t &+ 1) &* n &+ r] = v[1]
            y[(t &+ 2) &* n &+ r] = v[2]
            y[(t &+ 3) &* n &+ r] = v[3]
            y[(t &+ 4) &* n &+ r] = v[4]
            y[(t &+ 5) &* n &+ r] = v[5]
        }
        return true
    }

    /// Tokens `token ..< token + 4`, rows `rows` with a four-token micro-kernel; false (nothing
    /// done) when `w`'s type or `path` has none. Bit-identical to four `rowDots` (the
    /// micro-kernels run each token through the single-token kernel's operations).
    @inline(__always)
    static func fourTokens(_ w: QuantizedMatrix, _ x: PreparedActivations, token t: Int,
                           into y: UnsafeMutablePointer<Float>, rows: Range<Int>, path: IntegerPath) -> Bool {
        let blocks = w.blocksPerRow, stride = w.rowStride, n = w.rows
        @inline(__always)
        func store(_ r: Int, _ v: SIMD4<Float>) {
            y[t &* n &+ r] = v[0]
            y[(t &+ 1) &* n &+ r] = v[1]
            y[(t &+ 2) &* n &+ r] = v[2]
            y[(t &+ 3) &* n &+ r] = v[3]
        }
        func vnniToken(_ k: Int, _ a: UnsafeRawPointer) -> RowDotVNNI.Token {
            RowDotVNNI.Token(a: a, s: x.scalePointer(k), c: x.correctionPointer(k))
        }
        switch (w.type, path) {
        case (.q8, .avx2):
            func token(_ k: Int) -> RowDot.Q8Token { RowDot.Q8Token(a: x.q8Int8Pointer(k), s: x.scalePointer(k)) }
            let group = (token(t), token(t &+ 1), token(t &+ 2), token(t &+ 3))
            for r in rows {
                store(r, RowDot.q8AVX2x4(w.data + r &* stride, w.scales + r &* blocks &* 2, group, blocks: blocks))
            }
        case (.q8, .vnni):
            func token(_ k: Int) -> RowDotVNNI.Token { vnniToken(k, x.q8OffsetPointer(k)) }
            let group = (token(t), token(t &+ 1), token(t &+ 2), token(t &+ 3))
            for r in rows {
                store(r, RowDotVNNI.q8x4(w.data + r &* stride, w.scales + r &* blocks &* 2, group, blocks: blocks))
            }
        case (.q4, .avx2):
            func token(_ k: Int) -> RowDot.Q4Token {
                RowDot.Q4Token(a: x.q4Int8Pointer(k), s: x.scalePointer(k), c: x.correctionPointer(k))
            }
            let group = (token(t), token(t &+ 1), token(t &+ 2), token(t &+ 3))
            for r in rows {
                store(r, RowDot.q4AVX2x4(w.data + r &* stride, w.scales + r &* blocks &* 2, group, blocks: blocks))
            }
        case (.q4, .vnni):
            func token(_ k: Int) -> RowDotVNNI.Token { vnniToken(k, x.q4Int8Pointer(k)) }
            let group = (token(t), token(t &+ 1), token(t &+ 2), token(t &+ 3))
            for r in rows {
                store(r, RowDotVNNI.q4x4(w.data + r &* stride, w.scales + r &* blocks &* 2, group, blocks: blocks))
            }
        default:
            return false
        }
        return true
    }
    #endif

    /// Weight bytes per mat-mat tile: fits L1 with room for the activations' stream. (8 KiB was
    /// ~9% slower on q8 mat-mat; 32 and 64 KiB measured the same as 16 within noise.)
    static let matmulTileBytes = 16 * 1024

    /// Test hook: run the portable (non-AVX2) integer kernels on x86-64 too, so that the path
    /// other CPUs take is tested here.
    nonisolated(unsafe) static var usePortableKernels = false

    /// Test hook: run the AVX2 integer kernels even on a CPU with AVX-VNNI, so that the path
    /// CPUs without it take stays tested (and can be compared with the VNNI one).
    nonisolated(unsafe) static var forceAVX2Kernels = false

    /// Whether this CPU has AVX-VNNI (ymm `vpdpbusd`), checked once.
    public static let hasAVXVNNI: Bool = {
        #if arch(x86_64)
        return dsv2_cpu_has_avx_vnni() != 0
        #else
        return false
        #endif
    }()

    /// Whether the VNNI kernels run: the CPU has AVX-VNNI and the environment variable
    /// `DSV2_DISABLE_VNNI` is unset (set it to measure or run the AVX2 path on such a CPU;
    /// results are bit-identical either way).
    public static let usesAVXVNNI: Bool = hasAVXVNNI && getenv("DSV2_DISABLE_VNNI") == nil

    /// The integer (q8/q4) kernels in use: portable Swift SIMD (other architectures, or the
    /// test hook), AVX2, or AVX-VNNI (module DSV2KernelsVNNI, bit-identical to AVX2).
    enum IntegerPath { case portable, avx2, vnni }

    static var integerPath: IntegerPath {
        #if arch(x86_64)
        if usePortableKernels { return .portable }
        return usesAVXVNNI && !forceAVX2Kernels ? .vnni : .avx2
        #else
        return .portable
        #endif
    }

    /// The row loop, one specialised loop per weight type (the switch stays outside the loop).
    @inline(__always)
    static func rowDots(_ w: QuantizedMatrix, _ x: PreparedActivations, token: Int,
                        into y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
        let stride = w.rowStride
        #if arch(x86_64)
        let path = integerPath
        #endif
        switch w.type {
        case .q8:
            let blocks = w.blocksPerRow, s = x.scalePointer(token)
            #if arch(x86_64)
            if path == .vnni {
                let k = RowDotVNNI.Token(a: x.q8OffsetPointer(token), s: s, c: x.correctionPointer(token))
                for r in rows { y[r] = RowDotVNNI.q8(w.data + r &* stride, w.scales + r &* blocks &* 2, k, blocks: blocks) }
                return
            }
            if path == .avx2 {
                let a = x.q8Int8Pointer(token)
                for r in rows {
                    y[r] = RowDot.q8AVX2(w.data + r &* stride, w.scales + r &* blocks &* 2, a, s, blocks: blocks)
                }
                return
            }
            #endif
            let a = x.q8Pointer(token)
            for r in rows {
                y[r] = RowDot.q8(w.data + r &* stride, w.scales + r &* blocks &* 2, a, s, blocks: blocks)
            }
        case .q4:
            let blocks = w.blocksPerRow, s = x.scalePointer(token), c = x.correctionPointer(token)
            #if arch(x86_64)
            if path == .vnni {
                let k = RowDotVNNI.Token(a: x.q4Int8Pointer(token), s: s, c: c)
                for r in rows { y[r] = RowDotVNNI.q4(w.data + r &* stride, w.scales + r &* blocks &* 2, k, blocks: blocks) }
                return
            }
            if path == .avx2 {
                let a = x.q4Int8Pointer(token)
                for r in rows {
                    y[r] = RowDot.q4AVX2(w.data + r &* stride, w.scales + r &* blocks &* 2, a, s, c, blocks: blocks)
                }
                return
            }
            #endif
            let a = x.q4Pointer(token)
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
