import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Memory use of this process, for benchmarks.
enum ResourceUsage {
    /// Peak resident set size in bytes: `VmHWM` from /proc/self/status, else getrusage's
    /// `ru_maxrss` (KiB on Linux).
    static func peakResidentBytes() -> Int {
        if let kib = statusField("VmHWM") { return kib * 1024 }
        var usage = rusage()
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        return Int(usage.ru_maxrss) * 1024
    }

    /// Current resident set size in bytes (`VmRSS`), 0 when unknown.
    static func currentResidentBytes() -> Int { (statusField("VmRSS") ?? 0) * 1024 }

    /// Resets the peak (VmHWM) to the current RSS (Linux `clear_refs` value 5), so a benchmark can
    /// measure the peak of each configuration. Returns false when the kernel does not allow it.
    @discardableResult
    static func resetPeak() -> Bool {
        let fd = open("/proc/self/clear_refs", O_WRONLY)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        return write(fd, "5", 1) == 1
    }

    /// A "kB" field of /proc/self/status.
    private static func statusField(_ name: String) -> Int? {
        guard let text = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 2, let value = Int(parts[1]) { return value }
        }
        return nil
    }
}
