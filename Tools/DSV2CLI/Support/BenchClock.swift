import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The clocks of the `dsv2 bench` commands, in seconds (`clock_gettime`).
enum BenchClock {
    /// Wall time that never jumps (CLOCK_MONOTONIC).
    static func monotonic() -> Double { read(CLOCK_MONOTONIC) }

    /// CPU time of the whole process, all threads (CLOCK_PROCESS_CPUTIME_ID).
    static func processCPU() -> Double { read(CLOCK_PROCESS_CPUTIME_ID) }

    /// CPU time of the calling thread (CLOCK_THREAD_CPUTIME_ID): other jobs on the machine do
    /// not inflate it.
    static func threadCPU() -> Double { read(CLOCK_THREAD_CPUTIME_ID) }

    private static func read(_ clock: clockid_t) -> Double {
        var time = timespec()
        clock_gettime(clock, &time)
        return Double(time.tv_sec) + Double(time.tv_nsec) / 1e9
    }
}
