import CKernelSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A persistent pool of worker threads for the parallel regions of the quantized engine.
/// The caller is participant 0 and `threadCount − 1` workers are the others. An idle worker
/// spins for `spinMicroseconds` (a region costs ≈ 0.5 µs to start while it spins), then
/// blocks on a condition variable so that a busy machine is not starved by spinning
/// (measured: a pure spinning pool collapsed 5× with another process running).
///
/// Determinism: the helpers partition output rows only; each dot product is computed whole
/// by one thread, so results are bit-identical for every thread count.
///
/// Do not run OpenBLAS threads at the same time as this pool: with 2 cores both would fight
/// for them (set `openblas_set_num_threads(1)` in code that uses both).
public final class WorkerPool: @unchecked Sendable {
    public let threadCount: Int
    public let spinMicroseconds: Int

    /// The number of cores the process may use.
    public static var defaultThreadCount: Int {
        Int(max(1, sysconf(Int32(_SC_NPROCESSORS_ONLN))))
    }

    /// Incremented to start a region (and once more to stop the workers).
    private let generation = Atomic<Int>(0)
    /// Workers still running the current region.
    private let running = Atomic<Int>(0)
    private let stopping = Atomic<Bool>(false)
    /// The thread running the current region as participant 0 (its pthread_t bits; 0 when idle).
    private let regionOwner = Atomic<UInt>(0)
    /// How many times a worker has gone to sleep on the wake condition (tests check that an idle
    /// pool blocks instead of spinning).
    let sleeps = Atomic<Int>(0)
    private let wakeMutex: UnsafeMutablePointer<pthread_mutex_t>
    private let wakeCondition: UnsafeMutablePointer<pthread_cond_t>
    private let doneMutex: UnsafeMutablePointer<pthread_mutex_t>
    private let doneCondition: UnsafeMutablePointer<pthread_cond_t>
    private let regionMutex: UnsafeMutablePointer<pthread_mutex_t>
    private let body: UnsafeMutablePointer<((Int) -> Void)?>
    private var threads: [pthread_t] = []

    /// `threadCount` participants including the caller (default: all cores).
    public init(threadCount: Int = WorkerPool.defaultThreadCount, spinMicroseconds: Int = 200) {
        self.threadCount = max(1, threadCount)
        self.spinMicroseconds = spinMicroseconds
        wakeMutex = .allocate(capacity: 1); pthread_mutex_init(wakeMutex, nil)
        wakeCondition = .allocate(capacity: 1); pthread_cond_init(wakeCondition, nil)
        doneMutex = .allocate(capacity: 1); pthread_mutex_init(doneMutex, nil)
        doneCondition = .allocate(capacity: 1); pthread_cond_init(doneCondition, nil)
        regionMutex = .allocate(capacity: 1); pthread_mutex_init(regionMutex, nil)
        body = .allocate(capacity: 1); body.initialize(to: nil)
        for index in 1..<self.threadCount {
            let context = Unmanaged.passRetained(WorkerContext(pool: self, index: index)).toOpaque()
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { raw in
                let context = Unmanaged<WorkerContext>.fromOpaque(raw!).takeRetainedValue()
                context.pool.workerLoop(index: context.index)
                return nil
            }, context)
            precondition(status == 0, "WorkerPool: pthread_create failed (\(status))")
            threads.append(thread)
        }
    }

    deinit {
        stopping.store(true, ordering: .sequentiallyConsistent)
        pthread_mutex_lock(wakeMutex)
        generation.add(1, ordering: .sequentiallyConsistent)
        pthread_cond_broadcast(wakeCondition)
        pthread_mutex_unlock(wakeMutex)
        for thread in threads { pthread_join(thread, nil) }
        for m in [wakeMutex, doneMutex, regionMutex] { pthread_mutex_destroy(m); m.deallocate() }
        for c in [wakeCondition, doneCondition] { pthread_cond_destroy(c); c.deallocate() }
        body.deinitialize(count: 1); body.deallocate()
    }

    /// Runs `work(participant)` once for every participant 0..<threadCount, concurrently, and
    /// returns when all have finished. Called from inside a region of the same pool (or with
    /// one thread) it runs the participants one after the other on the calling thread.
    public func run(_ work: (Int) -> Void) {
        if threadCount == 1 { work(0); return }
        let me = pthread_self()
        let meBits = UInt(me)   // pthread_t is an integer on Linux
        if regionOwner.load(ordering: .sequentiallyConsistent) == meBits || threads.contains(where: { pthread_equal($0, me) != 0 }) {
            for p in 0..<threadCount { work(p) }
            return
        }
        pthread_mutex_lock(regionMutex)
        regionOwner.store(meBits, ordering: .sequentiallyConsistent)
        withoutActuallyEscaping(work) { escapable in
            body.pointee = escapable
            running.store(threadCount - 1, ordering: .sequentiallyConsistent)
            pthread_mutex_lock(wakeMutex)
            generation.add(1, ordering: .sequentiallyConsistent)
            pthread_cond_broadcast(wakeCondition)
            pthread_mutex_unlock(wakeMutex)
            escapable(0)
            waitForWorkers()
            body.pointee = nil
        }
        regionOwner.store(0, ordering: .sequentiallyConsistent)
        pthread_mutex_unlock(regionMutex)
    }

    /// Splits 0..<count into `threadCount` contiguous ranges (empty ones skipped) and runs
    /// `work` on each in parallel.
    public func parallelFor(_ count: Int, _ work: (Range<Int>) -> Void) {
        guard count > 0 else { return }
        if threadCount == 1 || count == 1 { work(0..<count); return }
        let n = threadCount
        run { p in
            let lower = p * count / n, upper = (p + 1) * count / n
            if lower < upper { work(lower..<upper) }
        }
    }

    // MARK: Workers

    private final class WorkerContext {
        // The pool joins its workers in deinit before its storage goes away.
        unowned(unsafe) let pool: WorkerPool
        let index: Int
        init(pool: WorkerPool, index: Int) { self.pool = pool; self.index = index }
    }

    private func workerLoop(index: Int) {
        var seen = 0
        while true {
            var current = generation.load(ordering: .sequentiallyConsistent)
            if current == seen {
                let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, spinMicroseconds)) * 1000
                var spins = 0
                while current == seen {
                    dsv2_cpu_relax()
                    spins &+= 1
                    if spins & 63 == 0 && MonotonicClock.nanoseconds() > deadline { break }
                    current = generation.load(ordering: .sequentiallyConsistent)
                }
                if current == seen {
                    // The generation is re-read under the mutex the starter holds while it
                    // increments and broadcasts, so a wake-up cannot be missed.
                    pthread_mutex_lock(wakeMutex)
                    current = generation.load(ordering: .sequentiallyConsistent)
                    while current == seen {
                        sleeps.add(1, ordering: .relaxed)
                        pthread_cond_wait(wakeCondition, wakeMutex)
                        current = generation.load(ordering: .sequentiallyConsistent)
                    }
                    pthread_mutex_unlock(wakeMutex)
                }
            }
            seen = current
            if stopping.load(ordering: .sequentiallyConsistent) { return }
            body.pointee.unsafelyUnwrapped(index)
            if running.subtract(1, ordering: .sequentiallyConsistent).newValue == 0 {
                pthread_mutex_lock(doneMutex)
                pthread_cond_signal(doneCondition)
                pthread_mutex_unlock(doneMutex)
            }
        }
    }

    /// Spin while the workers finish (they usually finish within microseconds of the caller),
    /// then block.
    private func waitForWorkers() {
        if running.load(ordering: .sequentiallyConsistent) == 0 { return }
        let deadline = MonotonicClock.nanoseconds() + UInt64(max(0, spinMicroseconds)) * 1000
        var spins = 0
        while running.load(ordering: .sequentiallyConsistent) != 0 {
            dsv2_cpu_relax()
            spins &+= 1
            if spins & 63 == 0 && MonotonicClock.nanoseconds() > deadline {
                pthread_mutex_lock(doneMutex)
                while running.load(ordering: .sequentiallyConsistent) != 0 { pthread_cond_wait(doneCondition, doneMutex) }
                pthread_mutex_unlock(doneMutex)
                return
            }
        }
    }
}
