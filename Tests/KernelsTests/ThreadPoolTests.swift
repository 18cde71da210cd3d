import XCTest
import DSV2Core
import TestSupport
import DSV2Formats
@testable import DSV2Kernels

/// The worker pool: coverage of parallelFor, re-entrancy, and results that do not depend on
/// the thread count (rows are partitioned, a dot product is never split).
final class ThreadPoolTests: XCTestCase {
    func testParallelForCoversEveryIndexOnce() {
        for threads in [1, 2, 3] {
            let pool = WorkerPool(threadCount: threads)
            for count in [0, 1, 2, 5, 1000] {
                var hits = [Int](repeating: 0, count: count)
                hits.withUnsafeMutableBufferPointer { h in
                    let base = h.baseAddress!
                    pool.parallelFor(count) { range in for i in range { base[i] += 1 } }
                }
                XCTAssertEqual(hits, [Int](repeating: 1, count: count), "threads \(threads) count \(count)")
            }
        }
    }

    func testRunGivesEveryParticipantOnceAndNestedRunsSerially() {
        let pool = WorkerPool(threadCount: 2)
        var seen = [Int](repeating: 0, count: 2 * 2)
        seen.withUnsafeMutableBufferPointer { s in
            let base = s.baseAddress!
            pool.run { outer in
                // A region inside a region runs on the calling thread instead of deadlocking.
                pool.run { inner in base[outer * 2 + inner] += 1 }
            }
        }
        XCTAssertEqual(seen, [1, 1, 1, 1])
        // Many short regions in a row (the decode pattern): none lost.
        var counter = [Int](repeating: 0, count: 2)
        counter.withUnsafeMutableBufferPointer { c in
            let base = c.baseAddress!
            for _ in 0..<2000 { pool.run { p in base[p] += 1 } }
        }
        XCTAssertEqual(counter, [2000, 2000])
    }

    /// An idle worker must block (not spin) once its spin time is over, and a region started
    /// while it sleeps must wake it. Fails for a pool that never blocks (no sleep is counted, and
    /// the process burns CPU while idle) and for one that loses a wake-up (the region never
    /// finishes: the watchdog fails the test instead of hanging).
    func testIdleWorkersBlockAndWakeUp() {
        let pool = WorkerPool(threadCount: 2, spinMicroseconds: 1)
        nonisolated(unsafe) let total = UnsafeMutablePointer<Int>.allocate(capacity: 2)
        total.initialize(repeating: 0, count: 2)
        defer { total.deallocate() }
        /// Waits (up to 2 s) until the worker has gone to sleep more than `count` times.
        func waitForSleep(after count: Int) -> Bool {
            let deadline = Date().addingTimeInterval(2)
            while pool.sleeps.load(ordering: .relaxed) <= count && Date() < deadline { usleep(100) }
            return pool.sleeps.load(ordering: .relaxed) > count
        }
        XCTAssertTrue(waitForSleep(after: 0), "the idle worker never blocked")
        for round in 1...20 {
            // The worker is asleep: the region must wake it, and once it is done the worker must
            // block again (a sleep counted after this point can only come after the region).
            let sleeps = pool.sleeps.load(ordering: .relaxed)
            let finished = DispatchSemaphore(value: 0)
            let region = Thread {
                pool.run { p in total[p] += 1 }
                finished.signal()
            }
            region.start()
            guard finished.wait(timeout: .now() + 10) == .success else {
                XCTFail("round \(round): a region started while the worker slept did not finish in 10 s (lost wake-up)")
                return
            }
            XCTAssertTrue(waitForSleep(after: sleeps), "round \(round): the idle worker did not block again")
        }
        XCTAssertEqual([total[0], total[1]], [20, 20])
        // Idle for 200 ms: a blocked worker uses no CPU; a spinning one would use up to 200 ms.
        let before = processCPUSeconds()
        usleep(200_000)
        let used = processCPUSeconds() - before
        XCTAssertLessThan(used, 0.05, "the process used \(used) s of CPU while its pool was idle for 0.2 s")
    }

    /// CPU time of this process (all threads) so far.
    func processCPUSeconds() -> Double {
        var t = timespec()
        clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t)
        return Double(t.tv_sec) + Double(t.tv_nsec) / 1e9
    }

    /// Bit-identical outputs with 1, 2 and 3 threads, for mat-vec, mat-mat and a phase of
    /// several products, every weight type.
    func testResultsDoNotDependOnThreadCount() {
        var random = SplitMix64(seed: 50)
        let pools = [1, 2, 3].map { WorkerPool(threadCount: $0) }
        for type in WeightType.allCases {
            let columns = 160, tokens = 3
            let a = makeMatrix(random.floats(101 * columns, scale: 0.1), rows: 101, columns: columns, type)
            let b = makeMatrix(random.floats(7 * columns, scale: 0.1), rows: 7, columns: columns, type)
            let x = random.floats(tokens * columns)
            let prepared = x.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: columns, tokens: tokens) }
            var outputs: [[Float]] = []
            for pool in pools {
                var y = [Float](repeating: .nan, count: 101 + 7 + tokens * 101 + 101)
                y.withUnsafeMutableBufferPointer { yp in
                    let base = yp.baseAddress!
                    pool.run([MatrixProduct(matrix: a, input: prepared, tokens: .one(1), output: base),
                              MatrixProduct(matrix: b, input: prepared, tokens: .one(2), output: base + 101),
                              MatrixProduct(matrix: a, input: prepared, tokens: .all, output: base + 108)])
                    pool.matvec(a, prepared, token: 0, into: base + 108 + tokens * 101)
                }
                outputs.append(y)
            }
            XCTAssertFalse(outputs[0].contains(where: \.isNaN), "\(type): every output written")
            XCTAssertEqual(outputs[0], outputs[1], "\(type): 1 vs 2 threads")
            XCTAssertEqual(outputs[0], outputs[2], "\(type): 1 vs 3 threads")
            // And equal to the serial kernels.
            var serial = [Float](repeating: .nan, count: 101)
            serial.withUnsafeMutableBufferPointer { Kernels.matvec(a, prepared, token: 1, into: $0.baseAddress!) }
            XCTAssertEqual(Array(outputs[1][0..<101]), serial, "\(type): pool vs serial")
        }
    }
}
