import ArgumentParser
import DSV2Formats
import DSV2Kernels
import Foundation

/// `dsv2 bench kernels`: how close the decode mat-vec kernels come to this machine's memory
/// bandwidth, and the prefill mat-mat throughput.
///
/// Mat-vec: GB/s of weights streamed (quants + scales) on 10944×2048 and 2048×10944 matrices,
/// cycling through enough distinct matrices (`--megabytes`, default 640 MB > the 260 MB L3 of
/// this machine kind) that every pass reads DRAM, as real decode does. Next to it, the
/// read bandwidth `ReadBandwidthProbe` measures in the same run, and the fraction.
/// Mat-mat: GFLOP/s (2·tokens·rows·columns per product) for 64 tokens × 1408×2048.
/// Latent attention: one decode token's attention core over `--latent-context` cached rows of
/// V2-Lite's shape (16 heads, 512 + 64 columns) on one thread, per cache type and products.
struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Mat-vec GB/s against measured read bandwidth; mat-mat GFLOP/s.")

    @Option(name: [.customShort("t"), .long], help: "Thread counts to measure, comma-separated.")
    var threads: String = "1,2"

    @Flag(name: .customLong("threads-force"), help: "Allow more than \(ThreadLimit.perCore) threads per core.")
    var threadsForce = false

    @Option(help: "Weight types, comma-separated (q4, q8, f16, bf16, f32).")
    var types: String = "q4,q8,f16,f32"

    @Option(help: "Total size of the distinct matrices cycled per measurement, in MB.")
    var megabytes: Int = 640

    @Option(help: "Minimum seconds per measurement.")
    var seconds: Double = 0.5

    @Option(help: "Cached rows of the latent attention measurement (0: skip it).")
    var latentContext: Int = 4096

    @Flag(help: "Print JSON instead of a table.")
    var json = false

    struct Bandwidth: Codable { var threads: Int; var gbPerSecond: Double }
    struct MatVec: Codable {
        var type: String; var rows: Int; var columns: Int; var threads: Int; var matrices: Int
        var gbPerSecond: Double; var fractionOfReadBandwidth: Double
    }
    struct MatMul: Codable {
        var type: String; var tokens: Int; var rows: Int; var columns: Int; var threads: Int; var gflops: Double
    }
    struct LatentCore: Codable {
        var cache: String; var products: String; var rows: Int
        /// One token's attention core over `rows` rows for one layer, and multiply-adds per second
        /// (heads × (width + rank) per row: the two products).
        var microseconds: Double; var gmacPerSecond: Double
    }
    struct Report: Codable {
        var readBandwidth: [Bandwidth]; var matvec: [MatVec]; var matmul: [MatMul]; var latentAttention: [LatentCore] = []
        var regionMicroseconds: [Bandwidth]
        /// 1-minute load average when the run started (other processes distort every figure).
        var loadAverage: Double?
        /// The integer kernel path measured (`KernelPath`, chosen from the CPU's features).
        var kernels: String
    }

    func run() throws {
        let threadCounts = try ThreadLimit.parseList(threads, force: threadsForce)
        let weightTypes = try types.split(separator: ",").map { part -> WeightType in
            guard let t = WeightType(rawValue: part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--types: unknown weight type '\(part)' (q4, q8, f16, bf16, f32)")
            }
            return t
        }
        guard megabytes > 0, seconds > 0 else { throw ValidationError("--megabytes and --seconds must be positive") }
        let pools = Dictionary(uniqueKeysWithValues: threadCounts.map { ($0, WorkerPool(threadCount: $0)) })

        let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))
            .flatMap { $0.split(separator: " ").first }.flatMap { Double($0) }
        var report = Report(readBandwidth: [], matvec: [], matmul: [], regionMicroseconds: [], loadAverage: load,
                            kernels: KernelTable.native.path.rawValue)
        // 1. Read bandwidth: the probe `bench model` uses (a buffer well above the last-level cache).
        for n in threadCounts {
            report.readBandwidth.append(Bandwidth(threads: n, gbPerSecond: ReadBandwidthProbe.measure(threads: n) / 1e9))
            log("read bandwidth, \(n) thread(s): \(format(report.readBandwidth.last!.gbPerSecond)) GB/s")
        }
        // Cost of starting one parallel region (empty body).
        for n in threadCounts {
            let pool = pools[n]!
            let count = 20000
            let start = BenchClock.monotonic()
            for _ in 0..<count { pool.run { _ in } }
            report.regionMicroseconds.append(Bandwidth(threads: n, gbPerSecond: (BenchClock.monotonic() - start) / Double(count) * 1e6))
        }
        // 2. Mat-vec over DRAM-resident weights.
        for type in weightTypes {
            for (rows, columns) in [(10944, 2048), (2048, 10944)] {
                let matrices = makeMatrices(type, rows: rows, columns: columns)
                var x = [Float](repeating: 0, count: columns)
                for i in 0..<columns { x[i] = Float(i % 17) / 17 - 0.5 }
                let prepared = x.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: columns) }
                let y = AlignedBuffer(byteCount: rows * 4)
                let out = y.pointer.assumingMemoryBound(to: Float.self)
                let bytes = Double(matrices.reduce(0) { $0 + $1.streamedBytes })
                for n in threadCounts {
                    let pool = pools[n]!
                    let time = measure { for m in matrices { pool.matvec(m, prepared, into: out) } }
                    let gbs = bytes / time / 1e9
                    let read = report.readBandwidth.first { $0.threads == n }!.gbPerSecond
                    report.matvec.append(MatVec(type: type.rawValue, rows: rows, columns: columns, threads: n,
                                                matrices: matrices.count, gbPerSecond: gbs,
                                                fractionOfReadBandwidth: gbs / read))
                    log("matvec \(type.rawValue) \(rows)x\(columns), \(n) thread(s): \(format(gbs)) GB/s")
                }
            }
        }
        // 3. Mat-mat (prefill): 64 tokens through one 1408×2048 matrix.
        let tokens = 64, rows = 1408, columns = 2048
        var values = [Float](repeating: 0, count: rows * columns)
        for i in 0..<values.count { values[i] = Float((i &* 7919) % 1000) / 1000 - 0.5 }
        var xs = [Float](repeating: 0, count: tokens * columns)
        for i in 0..<xs.count { xs[i] = Float((i &* 104729) % 997) / 997 - 0.5 }
        let prepared = xs.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens) }
        let y = AlignedBuffer(byteCount: tokens * rows * 4)
        for type in weightTypes {
            let matrix = values.withUnsafeBufferPointer {
                QuantizedMatrix.quantize($0.baseAddress!, rows: rows, columns: columns, as: type)
            }
            for n in threadCounts {
                let pool = pools[n]!
                let time = measure { pool.matmul(matrix, prepared, into: y.pointer.assumingMemoryBound(to: Float.self)) }
                let gflops = 2 * Double(tokens * rows * columns) / time / 1e9
                report.matmul.append(MatMul(type: type.rawValue, tokens: tokens, rows: rows, columns: columns,
                                            threads: n, gflops: gflops))
            }
        }

        // 4. The attention core of one decode token (one thread).
        if latentContext > 0 {
            var tables = [KernelTable.native]
            if CPUFeatures.current.contains(.avx512BF16),
               let plain = KernelTable(path: KernelTable.native.path, features: CPUFeatures.current.subtracting(.avx512BF16)) {
                tables.append(plain)
            }
            for type in [WeightType.f16, .bf16, .f32] {
                var seen = Set<String>()
                for table in tables where seen.insert(table.latentAttention(type).name).inserted {
                    report.latentAttention.append(measureLatentCore(table.latentAttention(type), type: type))
                    let r = report.latentAttention.last!
                    log("latent attention \(r.cache) \(r.products), \(r.rows) rows: \(format(r.microseconds)) µs, \(format(r.gmacPerSecond)) GMAC/s")
                }
            }
        }

        if json {
            try JSONOutput.print(report, pretty: true)
        } else {
            printTable(report)
        }
    }

    // MARK: Measurements

    /// Seconds per call of `body`: one warm-up call, then calls until `seconds` have passed
    /// (at least 3); the mean over the timed calls.
    func measure(_ body: () -> Void) -> Double {
        body()
        var calls = 0
        let start = BenchClock.monotonic()
        var elapsed = 0.0
        repeat {
            body()
            calls += 1
            elapsed = BenchClock.monotonic() - start
        } while elapsed < seconds || calls < 3
        return elapsed / Double(calls)
    }

    /// One token's attention over `latentContext` random cache rows of `type` (values in ±1):
    /// every block of `LatentAttention`'s partition, then the merge of every head.
    func measureLatentCore(_ products: LatentAttentionProducts, type: WeightType) -> LatentCore {
        let shape = LatentAttention.Shape(heads: 16, rank: 512, width: 576), rows = latentContext
        let rowBytes = shape.width * (type == .f32 ? 4 : 2)
        let cache = AlignedBuffer(byteCount: rows * rowBytes)
        var state: UInt64 = 0x2545_F491_4F6C_DD1D
        func next() -> Float {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return Float(Int64(bitPattern: state) >> 40) / Float(1 << 23)   // ±1
        }
        for i in 0..<rows * shape.width {
            let v = next()
            switch type {
            case .f16: cache.pointer.storeBytes(of: Float16(v), toByteOffset: i * 2, as: Float16.self)
            case .bf16: cache.pointer.storeBytes(of: ScalarQuantization.bfloat16Bits(v), toByteOffset: i * 2, as: UInt16.self)
            default: cache.pointer.storeBytes(of: v, toByteOffset: i * 4, as: Float.self)
            }
        }
        let query = (0..<shape.queryFloats).map { _ in next() * 0.1 }
        let blockRows = LatentAttention.blockRows(visible: rows), blocks = LatentAttention.blockCount(visible: rows)
        var partials = [Float](repeating: 0, count: blocks * shape.partialFloats)
        var scratch = [Float](repeating: 0, count: shape.scratchFloats), out = [Float](repeating: 0, count: shape.rank)
        let time = measure {
            partials.withUnsafeMutableBufferPointer { partial in
                for b in 0..<blocks {
                    LatentAttention.block(products, shape: shape, query: query, rows: UnsafeRawPointer(cache.pointer), rowBytes: rowBytes,
                                          range: b * blockRows ..< min(rows, (b + 1) * blockRows), scratch: &scratch,
                                          into: partial.baseAddress! + b * shape.partialFloats)
                }
                for h in 0..<shape.heads {
                    LatentAttention.merge(shape: shape, partials: partial.baseAddress!, blocks: blocks, head: h, into: &out)
                }
            }
        }
        let macs = Double(rows * shape.heads * (shape.width + shape.rank))
        return LatentCore(cache: type.rawValue, products: products.name, rows: rows, microseconds: time * 1e6,
                          gmacPerSecond: macs / time / 1e9)
    }

    /// Distinct matrices totalling at least `megabytes`, each filled with its own pseudo-random
    /// valid values of `type` (random quants; finite f16 scales and weights), so that a pass over
    /// them reads DRAM: identical or zero pages could be deduplicated by the host and read from
    /// cache, which would flatter the figures.
    func makeMatrices(_ type: WeightType, rows: Int, columns: Int) -> [QuantizedMatrix] {
        let byteCount = type.byteCount(rows: rows, columns: columns)
        let count = max(2, (megabytes << 20 + byteCount - 1) / byteCount)
        let scale = Float16(0.01).bitPattern
        return (0..<count).map { index in
            let buffer = AlignedBuffer(byteCount: byteCount, alignment: 4096)
            fillRandom(buffer, seed: UInt64(index) &+ 1)
            switch type {
            case .q8, .q4:
                let scales = (buffer.pointer + type.scalesOffset(rows: rows, columns: columns))
                    .assumingMemoryBound(to: UInt16.self)
                for i in 0..<(rows * WeightType.blocksPerRow(columns)) { scales[i] = scale ^ UInt16(i & 7) }
            // Float weights: random sign and mantissa, exponent fixed so every value lies in
            // ±[2^-7, 2^-6) like real weights. Random exponents would include subnormals, whose
            // microcode assists make FMA 100x slower and the figure meaningless.
            case .f16:
                let halves = buffer.pointer.assumingMemoryBound(to: UInt16.self)
                for i in 0..<(rows * columns) { halves[i] = (halves[i] & 0x83FF) | (8 << 10) }
            case .bf16:
                let halves = buffer.pointer.assumingMemoryBound(to: UInt16.self)
                for i in 0..<(rows * columns) { halves[i] = (halves[i] & 0x807F) | (120 << 7) }
            case .f32:
                let floats = buffer.pointer.assumingMemoryBound(to: UInt32.self)
                for i in 0..<(rows * columns) { floats[i] = (floats[i] & 0x807F_FFFF) | (120 << 23) }
            }
            return try! QuantizedMatrix(type: type, rows: rows, columns: columns, data: buffer.pointer,
                                        byteCount: byteCount, owner: buffer)
        }
    }

    /// Pseudo-random bytes (a 64-bit LCG; distinct per seed).
    func fillRandom(_ buffer: AlignedBuffer, seed: UInt64) {
        var state = seed &* 0x9E37_79B9_7F4A_7C15
        let words = buffer.pointer.assumingMemoryBound(to: UInt64.self)
        for i in 0..<(buffer.byteCount / 8) {
            state = state &* 6364136223846793005 &+ 1442695040888963407
            words[i] = state ^ (state >> 29)
        }
    }

    // MARK: Output

    func log(_ line: String) {
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }

    func format(_ value: Double, _ digits: Int = 1) -> String { String(format: "%.\(digits)f", value) }

    func printTable(_ report: Report) {
        if let load = report.loadAverage {
            print("load average at start: \(format(load, 2)) (on \(WorkerPool.defaultThreadCount) cores; figures are only meaningful near 0)")
        }
        print("integer kernels: \(report.kernels) (CPU features: \(CPUFeatures.current))")
        print("read bandwidth (probe): " + report.readBandwidth
            .map { "\($0.threads) thread(s) \(format($0.gbPerSecond)) GB/s" }.joined(separator: ", "))
        print("parallel region start+join: " + report.regionMicroseconds
            .map { "\($0.threads) thread(s) \(format($0.gbPerSecond, 2)) µs" }.joined(separator: ", "))
        print("")
        print("mat-vec (decode), weights streamed from DRAM")
        print("type  shape        threads  matrices  GB/s   of read bandwidth")
        for m in report.matvec {
            let shape = "\(m.rows)x\(m.columns)".padding(toLength: 12, withPad: " ", startingAt: 0)
            print("\(m.type.padding(toLength: 5, withPad: " ", startingAt: 0)) \(shape) \(String(format: "%7d", m.threads))  \(String(format: "%8d", m.matrices))  \(String(format: "%5.1f", m.gbPerSecond))  \(String(format: "%5.0f%%", m.fractionOfReadBandwidth * 100))")
        }
        print("")
        print("mat-mat (prefill), \(report.matmul.first?.tokens ?? 0) tokens x 1408x2048")
        print("type  threads  GFLOP/s")
        for m in report.matmul {
            print("\(m.type.padding(toLength: 5, withPad: " ", startingAt: 0)) \(String(format: "%7d", m.threads))  \(String(format: "%7.1f", m.gflops))")
        }
        guard let rows = report.latentAttention.first?.rows else { return }
        print("")
        print("latent attention core (decode), one token over \(rows) cached rows, 16 heads × 576, 1 thread")
        print("cache  products          µs/layer  GMAC/s")
        for l in report.latentAttention {
            print("\(l.cache.padding(toLength: 6, withPad: " ", startingAt: 0)) \(l.products.padding(toLength: 16, withPad: " ", startingAt: 0))  \(String(format: "%8.1f", l.microseconds))  \(String(format: "%6.1f", l.gmacPerSecond))")
        }
    }
}
