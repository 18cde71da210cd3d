import Foundation

/// Measures this machine's memory read bandwidth: `threads` threads each sum their share of a
/// buffer much larger than the caches (SIMD loads, 4 independent accumulators); the best of
/// `passes` timed passes, after one warm-up pass that also faults the pages in. This is the
/// roofline `dsv2 bench` compares decode against (decode reads every active weight once).
/// On a busy machine the best pass is the one that caught the cores free, hence many short
/// passes; other processes still pull the figure down (then pass `--read-bandwidth`).
enum ReadBandwidthProbe {
    /// Bytes per second; `bufferBytes` must be far above the last-level cache, else the probe
    /// measures the cache (this machine kind has a 260 MiB L3, where a 256 MiB buffer read at
    /// 47 GB/s against DRAM's 24).
    static func measure(threads: Int, bufferBytes: Int = defaultBufferBytes(), passes: Int = 15) -> Double {
        let vectorCount = bufferBytes / MemoryLayout<SIMD16<Float>>.stride
        let buffer = UnsafeMutablePointer<SIMD16<Float>>.allocate(capacity: vectorCount)
        defer { buffer.deallocate() }
        // Distinct non-zero values, so no page is shared or compressed.
        for i in 0..<vectorCount { buffer[i] = SIMD16<Float>(repeating: Float(i & 1023)) }
        let parts = max(1, threads)
        let perPart = vectorCount / parts
        var best = 0.0
        var sink: Float = 0
        let lock = NSLock()
        for pass in 0...passes {
            let start = DispatchTime.now().uptimeNanoseconds
            let body = { (part: Int) in
                let s = Self.sum(buffer + part * perPart, count: perPart)
                lock.lock(); sink += s; lock.unlock()
            }
            if parts == 1 { body(0) } else { DispatchQueue.concurrentPerform(iterations: parts, execute: body) }
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
            if pass > 0 { best = max(best, Double(perPart * parts * MemoryLayout<SIMD16<Float>>.stride) / seconds) }
        }
        if sink == .infinity { FileHandle.standardError.write(Data(" ".utf8)) }   // keeps the sums alive
        return best
    }

    /// Four times the last-level cache the kernel reports, at least 1 GiB.
    static func defaultBufferBytes() -> Int {
        max(1 << 30, 4 * (lastLevelCacheBytes() ?? 0))
    }

    /// The largest cache size under /sys/devices/system/cpu/cpu0/cache (e.g. "266240K").
    static func lastLevelCacheBytes() -> Int? {
        let base = "/sys/devices/system/cpu/cpu0/cache"
        guard let entries = try? FileManager.default.contentsOfDirectory(atPath: base) else { return nil }
        var largest: Int?
        for entry in entries where entry.hasPrefix("index") {
            guard let text = try? String(contentsOfFile: "\(base)/\(entry)/size", encoding: .utf8) else { continue }
            let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
            let unit: Int
            switch trimmed.last {
            case "K": unit = 1 << 10
            case "M": unit = 1 << 20
            case "G": unit = 1 << 30
            default: unit = 1
            }
            let digits = unit == 1 ? trimmed : String(trimmed.dropLast())
            if let value = Int(digits) { largest = max(largest ?? 0, value * unit) }
        }
        return largest
    }

    @inline(never)
    static func sum(_ p: UnsafePointer<SIMD16<Float>>, count: Int) -> Float {
        var a = SIMD16<Float>(), b = SIMD16<Float>(), c = SIMD16<Float>(), d = SIMD16<Float>()
        var i = 0
        while i + 4 <= count {
            a += p[i]; b += p[i &+ 1]; c += p[i &+ 2]; d += p[i &+ 3]
            i &+= 4
        }
        while i < count { a += p[i]; i &+= 1 }
        return (a + b + c + d).sum()
    }
}
