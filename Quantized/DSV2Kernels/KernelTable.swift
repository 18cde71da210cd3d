import CKernelSupport
import CKernelsBF16
import DSV2Formats
#if arch(x86_64) && !DSV2_PORTABLE
import DSV2KernelsAVX512
import DSV2KernelsVNNI
#endif

/// CPU features the kernels are chosen by (CKernelSupport's `DSV2_CPU_*` bits).
public struct CPUFeatures: OptionSet, Sendable, CustomStringConvertible {
    public let rawValue: UInt64
    public init(rawValue: UInt64) { self.rawValue = rawValue }
    init(_ bit: Int) { rawValue = UInt64(bit) }

    public static let avx2 = CPUFeatures(DSV2_CPU_AVX2)
    public static let fma = CPUFeatures(DSV2_CPU_FMA)
    public static let f16c = CPUFeatures(DSV2_CPU_F16C)
    /// The operating system saves the ymm registers (XCR0).
    public static let osAVX = CPUFeatures(DSV2_CPU_OS_AVX)
    public static let avx512f = CPUFeatures(DSV2_CPU_AVX512F)
    public static let avx512bw = CPUFeatures(DSV2_CPU_AVX512BW)
    public static let avx512vl = CPUFeatures(DSV2_CPU_AVX512VL)
    public static let avx512VNNI = CPUFeatures(DSV2_CPU_AVX512_VNNI)
    /// The operating system saves the opmask and zmm registers (XCR0).
    public static let osAVX512 = CPUFeatures(DSV2_CPU_OS_AVX512)
    /// AVX-VNNI: the VEX form of vpdpbusd.
    public static let avxVNNI = CPUFeatures(DSV2_CPU_AVX_VNNI)
    /// AVX-512 BF16: vdpbf16ps (the latent attention products on a bf16 cache).
    public static let avx512BF16 = CPUFeatures(DSV2_CPU_AVX512_BF16)

    /// This CPU's features (CPUID and XGETBV, minus those named in `DSV2_CPU_IGNORE`), read once.
    public static let current = CPUFeatures(rawValue: dsv2_cpu_features())

    /// The /proc/cpuinfo names of the features, comma-separated.
    public var description: String {
        (0..<Int(DSV2_CPU_FEATURE_COUNT)).filter { rawValue & (1 << UInt64($0)) != 0 }
            .map { String(cString: dsv2_cpu_feature_name(Int32($0))) }.joined(separator: ",")
    }
}

/// The implementations of the q8/q4 integer kernels. They compute the same exact integer block
/// sums; the three x86 paths then run the same float operations in the same order and are
/// bit-identical, the portable path sums in another lane order (equal to the spec within
/// rounding, not bit for bit).
public enum KernelPath: String, CaseIterable, Sendable {
    /// Swift SIMD on 16-bit lanes (shifts and masks): any CPU, the only path of a portable build.
    case portable
    /// vpmaddubsw + vpmaddwd (`RowDotAVX2`): the x86-64-v3 baseline.
    case avx2
    /// VEX vpdpbusd (module DSV2KernelsVNNI, compiled with -mavxvnni).
    case avxVNNI = "avx-vnni"
    /// EVEX vpdpbusd on ymm, with 32 vector registers for wider mat-mat micro-kernels (module
    /// DSV2KernelsAVX512, compiled with -mavx512f/bw/vl/vnni).
    case avx512VNNI = "avx512-vnni"

    /// The CPU features the path needs.
    public var requirements: CPUFeatures {
        let base: CPUFeatures = [.avx2, .fma, .f16c, .osAVX]
        switch self {
        case .portable: return []
        case .avx2: return base
        case .avxVNNI: return base.union(.avxVNNI)
        case .avx512VNNI: return base.union([.avx512f, .avx512bw, .avx512vl, .avx512VNNI, .osAVX512])
        }
    }

    /// Whether this build contains the path (a portable build has only `.portable`).
    public var isCompiled: Bool {
        #if arch(x86_64) && !DSV2_PORTABLE
        return true
        #else
        return self == .portable
        #endif
    }

    /// Whether the path is compiled and a CPU with `features` can run it.
    public func runs(on features: CPUFeatures) -> Bool {
        isCompiled && features.isSuperset(of: requirements)
    }

    /// The path for a CPU with `features`: AVX-512 VNNI where present (the same instruction as
    /// AVX-VNNI, with twice the registers: wider mat-mat micro-kernels), else AVX-VNNI, else AVX2,
    /// else portable.
    public static func best(for features: CPUFeatures) -> KernelPath {
        [.avx512VNNI, .avxVNNI, .avx2].first { $0.runs(on: features) } ?? .portable
    }
}

/// How a table's integer kernels want the int8 activation quants laid out (`PreparedActivations`
/// fills only the layouts of its table).
public struct ActivationLayouts: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// Int16, even/odd order per block (a₀, a₂, …, a₃₀, a₁, …, a₃₁): portable q8.
    static let q8Int16 = ActivationLayouts(rawValue: 1 << 0)
    /// Int16, q4 pair order (`PreparedActivations`): portable q4.
    static let q4Int16 = ActivationLayouts(rawValue: 1 << 1)
    /// Int8, natural order: AVX2 q8.
    static let q8Int8 = ActivationLayouts(rawValue: 1 << 2)
    /// Int8, q4 pair order: AVX2 and VNNI q4.
    static let q4Int8 = ActivationLayouts(rawValue: 1 << 3)
    /// Natural order offset to unsigned bytes (a + 128 = a XOR 0x80): VNNI q8.
    static let q8Offset = ActivationLayouts(rawValue: 1 << 4)
}

/// The kernels of one weight type on one path.
struct WeightKernels: Sendable {
    /// y[r] = W[r] · x[token] for r in `rows` (y indexed by the absolute row).
    typealias RowDots = @Sendable (_ w: QuantizedMatrix, _ x: PreparedActivations, _ token: Int,
                                   _ y: UnsafeMutablePointer<Float>, _ rows: Range<Int>) -> Void
    /// One row against several tokens: (quants, f16 scales, token planes — for token k [3k] quants,
    /// [3k + 1] scales, [3k + 2] corrections —, blocks) → token k's dot product in lane k.
    typealias MultiDot = @Sendable (UnsafeRawPointer, UnsafeRawPointer, UnsafePointer<UnsafeRawPointer>, Int) -> SIMD8<Float>
    /// A kernel for `tokens` tokens at once (`PreparedActivations.tokenPlanes` gives its planes).
    struct MicroKernel: Sendable {
        let tokens: Int
        let dot: MultiDot
    }

    /// The activation plane the kernels read ([] for the float types: the floats are always there).
    let layout: ActivationLayouts
    let rowDots: RowDots
    /// Multi-token micro-kernels, widest first, each bit-identical to `rowDots` per token (each
    /// weight vector is loaded and unpacked once for all the tokens); empty: one token at a time.
    let microKernels: [MicroKernel]
}

/// One `WeightKernels` per weight type for one `KernelPath`: the only place where kernels are
/// chosen. `native` is this CPU's, chosen once; tests build a table per path (`init?(path:)`)
/// and prepare their activations for it.
public final class KernelTable: Sendable {
    public let path: KernelPath
    let q8: WeightKernels, q4: WeightKernels, f32: WeightKernels, f16: WeightKernels, bf16: WeightKernels
    /// The products of attention over the latent cache, per cache element type.
    let latentF16: LatentAttentionProducts, latentBF16: LatentAttentionProducts, latentF32: LatentAttentionProducts
    /// The union of the weight types' layouts: what `PreparedActivations` fills.
    let activationLayouts: ActivationLayouts

    /// The table of `KernelPath.best(for: .current)`.
    public static let native = KernelTable(checked: .best(for: .current), features: .current)

    /// The table of `path`, or nil if this build lacks it or a CPU with `features` cannot run it.
    public convenience init?(path: KernelPath, features: CPUFeatures = .current) {
        guard path.runs(on: features) else { return nil }
        self.init(checked: path, features: features)
    }

    /// Every path this CPU can run, as tables.
    public static var runnable: [KernelTable] { KernelPath.allCases.compactMap { KernelTable(path: $0) } }

    /// `features`: the CPU's, for kernels beyond the path's own requirements (AVX-512 BF16).
    private init(checked path: KernelPath, features: CPUFeatures) {
        self.path = path
        (f32, f16, bf16) = (FloatKernels.f32, FloatKernels.f16, FloatKernels.bf16)
        switch path {
        case .portable: (q8, q4) = (PortableKernels.q8, PortableKernels.q4)
        #if arch(x86_64) && !DSV2_PORTABLE
        case .avx2: (q8, q4) = (AVX2Kernels.q8, AVX2Kernels.q4)
        case .avxVNNI: (q8, q4) = (AVXVNNIKernels.q8, AVXVNNIKernels.q4)
        case .avx512VNNI: (q8, q4) = (AVX512VNNIKernels.q8, AVX512VNNIKernels.q4)
        #else
        default: preconditionFailure("kernel path \(path) is not compiled in this build")
        #endif
        }
        activationLayouts = [q8.layout, q4.layout]
        #if arch(x86_64) && !DSV2_PORTABLE
        if path == .avx512VNNI {
            (latentF16, latentF32) = (AVX512VNNIKernels.latentF16, AVX512VNNIKernels.latentF32)
            latentBF16 = features.isSuperset(of: .avx512BF16) && dsv2_bf16_kernels_compiled() != 0
                ? AVX512VNNIKernels.latentBF16DotProduct : AVX512VNNIKernels.latentBF16
        } else {
            (latentF16, latentBF16, latentF32) = (.f16, .bf16, .f32)
        }
        #else
        (latentF16, latentBF16, latentF32) = (.f16, .bf16, .f32)
        #endif
    }

    /// The latent attention products for cache rows of `type` (f16, bf16 or f32).
    public func latentAttention(_ type: WeightType) -> LatentAttentionProducts {
        switch type {
        case .f16: return latentF16
        case .bf16: return latentBF16
        case .f32: return latentF32
        default: preconditionFailure("the latent cache holds f16, bf16 or f32 values, not \(type)")
        }
    }

    @inline(__always)
    subscript(type: WeightType) -> WeightKernels {
        switch type {
        case .q8: return q8
        case .q4: return q4
        case .f32: return f32
        case .f16: return f16
        case .bf16: return bf16
        }
    }
}

// MARK: The kernels of each path

extension QuantizedMatrix {
    /// y[r] = dot(row r's quants, row r's f16 scales) for r in `rows` (q8/q4).
    @inline(__always)
    func eachRow(_ rows: Range<Int>, into y: UnsafeMutablePointer<Float>,
                 _ dot: (UnsafeRawPointer, UnsafeRawPointer) -> Float) {
        let stride = rowStride, scaleStride = blocksPerRow &* 2
        for r in rows { y[r] = dot(data + r &* stride, scales + r &* scaleStride) }
    }
}

extension WeightKernels {
    /// One token's q8/q4 row dot: (quants, f16 scales, activation quants, activation scales,
    /// q4 corrections, blocks) → the dot product.
    typealias IntegerDot = (UnsafeRawPointer, UnsafeRawPointer, UnsafeRawPointer, UnsafePointer<Float>,
                            UnsafeRawPointer, Int) -> Float
    /// q8/q4 kernels from a path's entry points: `dot` reads `layout`'s quants, and each
    /// `(tokens, kernel)` of `multi` (widest first) runs that many tokens per pass.
    init(integer layout: ActivationLayouts, dot: @escaping IntegerDot, multi: [(Int, MultiDot)] = []) {
        self.layout = layout
        rowDots = { w, x, t, y, rows in
            let a = x.quantPointer(layout, t), s = x.scalePointer(t), c = x.correctionPointer(t), blocks = w.blocksPerRow
            w.eachRow(rows, into: y) { dot($0, $1, a, s, c, blocks) }
        }
        microKernels = multi.map { MicroKernel(tokens: $0.0, dot: $0.1) }
    }

    /// f32/f16/bf16 weights: one token at a time; `dot` gets the row, the token's floats and
    /// their even/odd copy (bf16), and the columns.
    init(float dot: @escaping (UnsafeRawPointer, UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Float) {
        layout = []
        rowDots = { w, x, t, y, rows in
            let f = x.floatPointer(t), e = x.evenOddPointer(t), stride = w.rowStride, columns = w.columns
            for r in rows { y[r] = dot(w.data + r &* stride, f, e, columns) }
        }
        microKernels = []
    }
}

/// f32/f16/bf16 weights: the same Swift SIMD row dots on every path.
enum FloatKernels {
    static let f32 = WeightKernels(float: { w, x, _, n in RowDot.f32(w, x, columns: n) })
    static let f16 = WeightKernels(float: { w, x, _, n in RowDot.f16(w, x, columns: n) })
    static let bf16 = WeightKernels(float: { w, x, e, n in RowDot.bf16(w, x, e, columns: n) })
}

/// Swift SIMD on 16-bit lanes (`RowDot.q8` / `RowDot.q4`), one token at a time.
enum PortableKernels {
    static let q8 = WeightKernels(integer: .q8Int16, dot: { w, ws, a, s, _, n in RowDot.q8(w, ws, a, s, blocks: n) })
    static let q4 = WeightKernels(integer: .q4Int16, dot: { w, ws, a, s, c, n in RowDot.q4(w, ws, a, s, c, blocks: n) })
}

#if arch(x86_64) && !DSV2_PORTABLE
/// vpmaddubsw + vpmaddwd (`RowDotAVX2`); four tokens at a time.
enum AVX2Kernels {
    static let q8 = WeightKernels(integer: .q8Int8, dot: { w, ws, a, s, _, n in RowDot.q8AVX2(w, ws, a, s, blocks: n) },
                                  multi: [(4, { RowDot.q8AVX2x4($0, $1, $2, blocks: $3) })])
    static let q4 = WeightKernels(integer: .q4Int8, dot: { w, ws, a, s, c, n in RowDot.q4AVX2(w, ws, a, s, c, blocks: n) },
                                  multi: [(4, { RowDot.q4AVX2x4($0, $1, $2, blocks: $3) })])
}

/// VEX vpdpbusd (DSV2KernelsVNNI): q8 six or four tokens at a time, q4 four.
enum AVXVNNIKernels {
    typealias V = DSV2KernelsVNNI.RowDotVNNI
    static let q8 = WeightKernels(integer: .q8Offset, dot: { V.q8($0, $1, $2, $3, $4, blocks: $5) },
                                  multi: [(6, { V.q8x6($0, $1, $2, blocks: $3) }), (4, { V.q8x4($0, $1, $2, blocks: $3) })])
    static let q4 = WeightKernels(integer: .q4Int8, dot: { V.q4($0, $1, $2, $3, $4, blocks: $5) },
                                  multi: [(4, { V.q4x4($0, $1, $2, blocks: $3) })])
}

/// EVEX vpdpbusd (DSV2KernelsAVX512): the same kernels plus eight tokens at a time.
enum AVX512VNNIKernels {
    typealias V = DSV2KernelsAVX512.RowDotVNNI
    static let q8 = WeightKernels(integer: .q8Offset, dot: { V.q8($0, $1, $2, $3, $4, blocks: $5) },
                                  multi: [(8, { V.q8x8($0, $1, $2, blocks: $3) }), (4, { V.q8x4($0, $1, $2, blocks: $3) })])
    static let q4 = WeightKernels(integer: .q4Int8, dot: { V.q4($0, $1, $2, $3, $4, blocks: $5) },
                                  multi: [(8, { V.q4x8($0, $1, $2, blocks: $3) }), (4, { V.q4x4($0, $1, $2, blocks: $3) })])
    /// The latent attention products on zmm registers (`LatentProducts` of DSV2KernelsAVX512).
    typealias L = DSV2KernelsAVX512.LatentProducts
    static let latentF16 = LatentAttentionProducts(
        scores: { L.scoresF16($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { L.weightedSumF16($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6, scratch: $7, into: $8) },
        name: "avx512-f16", exact: true)
    static let latentF32 = LatentAttentionProducts(
        scores: { L.scoresF32($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { L.weightedSumF32($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6, scratch: $7, into: $8) },
        name: "avx512-f32", exact: true)
    static let latentBF16 = LatentAttentionProducts(
        scores: { L.scoresBF16($0, lanes: $1, rows: $2, rowBytes: $3, count: $4, width: $5, scratch: $6, into: $7) },
        weightedSum: { L.weightedSumBF16($0, lanes: $1, heads: $2, rows: $3, rowBytes: $4, count: $5, rank: $6, scratch: $7, into: $8) },
        name: "avx512-bf16", exact: true)
    /// vdpbf16ps (C module CKernelsBF16) where the CPU has AVX-512 BF16: the query and the
    /// weights rounded to bf16, two products per instruction (twice the multiply-adds of FMA).
    static let latentBF16DotProduct = LatentAttentionProducts(
        scores: { dsv2_bf16_scores($0, $1, $2, $3, $4, $5, $6, $7) },
        weightedSum: { dsv2_bf16_weighted_sum($0, $1, $2, $3, $4, $5, $6, $7, $8) }, name: "avx512-bf16-dot", exact: false)
}
#endif
