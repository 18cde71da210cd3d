import XCTest
import DSV2Core
import TestSupport
import DSV2Formats
import DSV2Kernels

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

    func testIdleWorkersBlockAndWakeUp() {
        let pool = WorkerPool(threadCount: 2, spinMicroseconds: 1)
        var total = [Int](repeating: 0, count: 2)
        for _ in 0..<20 {
            usleep(500)  // longer than the spin: the worker is asleep on its condition variable
            total.withUnsafeMutableBufferPointer { t in
                let base = t.baseAddress!
                pool.run { p in base[p] += 1 }
            }
        }
        XCTAssertEqual(total, [20, 20])
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
                    pool.run([MatrixProduct(matrix: a, input: prepared, token: 1, output: base),
                              MatrixProduct(matrix: b, input: prepared, token: 2, output: base + 101),
                              MatrixProduct(matrix: a, input: prepared, token: nil, output: base + 108)])
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
