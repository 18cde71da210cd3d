import DSV2Reference
import Foundation

/// Makes OpenBLAS use the CPU's vector kernels.
///
/// OpenBLAS 0.3.21 (Debian, DYNAMIC_ARCH) picks its kernels from a table of CPU models when the
/// library loads; on CPUs newer than the table (seen on our 2-core VMs) it falls back to the
/// SSE3 "Prescott" kernels: sgemm at ~15 GFLOP/s instead of ~60 (SkylakeX kernels), 4× slower.
/// The choice can only be overridden by `OPENBLAS_CORETYPE` before the library loads, so when
/// the fallback was taken on a CPU with AVX2/AVX-512 we set the variable and re-execute the
/// process once. An explicit `OPENBLAS_CORETYPE` is always respected.
enum BLASCoreSelection {
    static let fallbackCores: Set<String> = ["Prescott", "Core2", "Katmai", "Penryn", "Dunnington", "Nehalem"]

    static func reexecIfNeeded() {
        guard getenv("OPENBLAS_CORETYPE") == nil, fallbackCores.contains(BLAS.coreName),
              let better = bestCoreForThisCPU() else { return }
        setenv("OPENBLAS_CORETYPE", better, 1)
        execv("/proc/self/exe", CommandLine.unsafeArgv)
        // execv only returns on failure: carry on with the slow kernels.
    }

    /// The OpenBLAS core name matching the CPU flags of /proc/cpuinfo, if better than SSE3.
    static func bestCoreForThisCPU() -> String? {
        guard let cpuinfo = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
              let flagsLine = cpuinfo.split(separator: "\n").first(where: { $0.hasPrefix("flags") }) else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if flags.isSuperset(of: ["avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512cd"]) { return "SkylakeX" }
        if flags.isSuperset(of: ["avx2", "fma"]) { return "Haswell" }
        return nil
    }
}
