import XCTest
@testable import DSV2Converter

final class SynthRandomTests: XCTestCase {
    /// The vector path (16 elements per step) and the scalar definition give the same bf16 bits
    /// for every element, whatever the range boundaries (odd starts, short tails).
    func testVectorPathMatchesScalarDefinition() {
        let random = SynthRandom(seed: 7, name: "model.layers.3.mlp.experts.5.up_proj.weight")
        let count = 1000
        var whole = [UInt16](repeating: 0, count: count)
        var pieces = [UInt16](repeating: 0, count: count)
        whole.withUnsafeMutableBufferPointer { random.fillBF16($0.baseAddress!, range: 0..<count, std: 0.05) }
        pieces.withUnsafeMutableBufferPointer { p in
            for range in [0..<3, 3..<20, 20..<21, 21..<517, 517..<1000] { random.fillBF16(p.baseAddress!, range: range, std: 0.05) }
        }
        XCTAssertEqual(whole, pieces)
        for i in 0..<count {
            XCTAssertEqual(whole[i], SynthRandom.bf16(random.value(i, std: 0.05)), "element \(i)")
        }
    }

    /// Mean 0 and the requested deviation: with n = 2^20 samples the standard error of the mean
    /// is σ/1024 and of the deviation ≈ σ/1448, so 1% bounds are > 10 standard errors wide.
    /// Irwin–Hall(4) tails stop at √12 ≈ 3.46σ.
    func testMomentsAndTails() {
        let random = SynthRandom(seed: 1, name: "t")
        let n = 1 << 20, std: Float = 0.25
        var bits = [UInt16](repeating: 0, count: n)
        bits.withUnsafeMutableBufferPointer { random.fillBF16($0.baseAddress!, range: 0..<n, std: std) }
        var sum = 0.0, squares = 0.0, largest: Float = 0
        for b in bits {
            let v = Float(bitPattern: UInt32(b) << 16)
            sum += Double(v); squares += Double(v) * Double(v); largest = max(largest, abs(v))
        }
        let mean = sum / Double(n)
        let deviation = (squares / Double(n) - mean * mean).squareRoot()
        XCTAssertLessThan(abs(mean), 0.01 * Double(std))
        XCTAssertEqual(deviation, Double(std), accuracy: 0.01 * Double(std))
        XCTAssertLessThanOrEqual(largest, 3.47 * std)
        XCTAssertGreaterThan(largest, 3.0 * std)
    }

    /// Streams depend on the seed and on the tensor name.
    func testStreamsDifferBySeedAndName() {
        func first(_ seed: UInt64, _ name: String) -> [UInt16] {
            var out = [UInt16](repeating: 0, count: 64)
            out.withUnsafeMutableBufferPointer { SynthRandom(seed: seed, name: name).fillBF16($0.baseAddress!, range: 0..<64, std: 1) }
            return out
        }
        XCTAssertEqual(first(3, "a"), first(3, "a"))
        XCTAssertNotEqual(first(3, "a"), first(4, "a"))
        XCTAssertNotEqual(first(3, "a"), first(3, "b"))
    }
}
