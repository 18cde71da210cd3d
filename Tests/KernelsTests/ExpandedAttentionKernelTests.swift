import DSV2Core
import DSV2Kernels
import Foundation
import TestSupport
import XCTest

/// `ExpandedAttentionKernels`: the vector exponential both attention kernels use
/// (`VectorMath.exp`), and the online-softmax attention of a
/// query block against a float64 softmax attention written from the definition.
final class ExpandedAttentionKernelTests: XCTestCase {
    /// Within 2 ulp of e^x over the arguments a softmax gives it (x ≤ 0, down to where e^x
    /// leaves the normal floats), and exact at the points the online softmax relies on: e^0 = 1
    /// (a tile that adds nothing leaves the state unchanged) and e^−∞ = 0 (masked keys).
    func testExponential() {
        var worst = 0.0
        var x: Float = -87
        while x <= 20 {
            let lanes = SIMD16<Float>((0..<16).map { x + Float($0) * 0.001 })
            let e = VectorMath.exp(lanes)
            for i in 0..<16 {
                let exact = Foundation.exp(Double(lanes[i]))
                worst = max(worst, abs(Double(e[i]) - exact) / (exact * Double(Float.ulpOfOne)))
            }
            x += 0.0371
        }
        print("[expanded-kernels] exp: worst error \(String(format: "%.2f", worst)) ulp over [-87, 20]")
        XCTAssertLessThanOrEqual(worst, 2)
        let special = VectorMath.exp(SIMD16<Float>(0, -.infinity, -200, -104, -88, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0))
        XCTAssertEqual(special[0], 1)
        for i in 1...3 { XCTAssertEqual(special[i], 0) }
        XCTAssertLessThan(special[4], 1e-37)
    }

    /// Shapes of the real models' heads scaled down; keys in tiles of 64 as the engine runs them.
    static let nope = 24, rope = 8, vDim = 20, keys = 150, tile = 64

    private struct Problem {
        var queries: [[Float]]      // [lane][nope + rope]
        var positions: [Int]        // [lane]
        var keys: [Float]           // [keys, nope]
        var ropeKeys: [Float]       // [keys, rope]
        var values: [Float]         // [keys, vDim]
    }

    private func problem(seed: UInt64) -> Problem {
        var random = SplitMix64(seed: seed)
        func values(_ n: Int, _ scale: Double) -> [Float] { (0..<n).map { _ in Float(random.normal() * scale) } }
        let t = Self.self
        // Lanes at positions 0, 9, 18, …, 135, out of order: several tiles, the diagonal inside one.
        let positions = (0..<16).map { ($0 * 7 % 16) * 9 }
        return Problem(queries: (0..<16).map { _ in values(t.nope + t.rope, 1) }, positions: positions,
                       keys: values(t.keys * t.nope, 1), ropeKeys: values(t.keys * t.rope, 1), values: values(t.keys * t.vDim, 1))
    }

    /// Runs the kernel for lanes `lanes` of `p` (the others padded as the engine pads them) and
    /// returns each of those lanes' outputs.
    private func run(_ p: Problem, lanes: [Int], scale: Float) -> [[Float]] {
        let t = Self.self, width = t.nope + t.rope
        var queriesT = [Float](repeating: 0, count: width * 16)
        var positions = SIMD16<Float>(repeating: Float(lanes.map { p.positions[$0] }.max()!))
        for (lane, source) in lanes.enumerated() {
            for d in 0..<width { queriesT[d * 16 + lane] = p.queries[source][d] }
            positions[lane] = Float(p.positions[source])
        }
        var state = [Float](repeating: 0, count: ExpandedAttentionKernels.stateFloats(vDim: t.vDim))
        var scores = [Float](repeating: 0, count: t.tile * 16)
        let end = Int(positions.max()) + 1
        ExpandedAttentionKernels.resetState(&state, vDim: t.vDim)
        for first in stride(from: 0, to: end, by: t.tile) {
            p.keys.withUnsafeBufferPointer { k in
                p.ropeKeys.withUnsafeBufferPointer { r in
                    p.values.withUnsafeBufferPointer { v in
                        ExpandedAttentionKernels.attend(
                            queriesT: queriesT, positions: positions, nope: t.nope, rope: t.rope,
                            keys: k.baseAddress! + first * t.nope, keyStride: t.nope,
                            ropeKeys: r.baseAddress! + first * t.rope, ropeStride: t.rope,
                            values: v.baseAddress! + first * t.vDim, valueStride: t.vDim, vDim: t.vDim,
                            firstKey: first, count: min(t.tile, end - first), scale: scale, scores: &scores, state: &state)
                    }
                }
            }
        }
        return lanes.indices.map { lane in
            var out = [Float](repeating: 0, count: t.vDim)
            ExpandedAttentionKernels.finish(state, lane: lane, vDim: t.vDim, into: &out)
            return out
        }
    }

    /// The definition in float64: o = Σ_{j ≤ position} softmax_j(scale · q·k_j) v_j.
    private func expected(_ p: Problem, lane: Int, scale: Float) -> [Double] {
        let t = Self.self, visible = p.positions[lane] + 1, q = p.queries[lane]
        var scores = (0..<visible).map { j -> Double in
            var dot = 0.0
            for d in 0..<t.nope { dot += Double(q[d]) * Double(p.keys[j * t.nope + d]) }
            for d in 0..<t.rope { dot += Double(q[t.nope + d]) * Double(p.ropeKeys[j * t.rope + d]) }
            return dot * Double(scale)
        }
        let top = scores.max()!
        scores = scores.map { Foundation.exp($0 - top) }
        let sum = scores.reduce(0, +)
        return (0..<t.vDim).map { c in (0..<visible).reduce(0.0) { $0 + scores[$1] * Double(p.values[$1 * t.vDim + c]) } / sum }
    }

    /// Within 1e-5 of the largest output value: float32 products of 32 terms and sums of up to
    /// 136 weights, each rounding at 2^-24 relative, stay far below that; a wrong mask, scale
    /// or rescaling of the running sums moves outputs by 1e-2 or more.
    func testAttendMatchesDefinition() {
        let scale: Float = 0.3
        let p = problem(seed: 11)
        let actual = run(p, lanes: Array(0..<16), scale: scale)
        var worst = 0.0, magnitude = 0.0
        for lane in 0..<16 {
            let e = expected(p, lane: lane, scale: scale)
            for c in 0..<Self.vDim {
                worst = max(worst, abs(Double(actual[lane][c]) - e[c]))
                magnitude = max(magnitude, abs(e[c]))
            }
        }
        print("[expanded-kernels] attend vs float64 definition: max abs \(String(format: "%.2e", worst)) of max \(String(format: "%.3f", magnitude))")
        XCTAssertLessThanOrEqual(worst, 1e-5 * magnitude)
    }

    /// A query's output does not depend on its lane or on the other lanes (bit for bit): the
    /// engine's results are then the same for any block of rows, chunk or thread.
    func testLanesAreIndependent() {
        let p = problem(seed: 12)
        let all = run(p, lanes: Array(0..<16), scale: 0.25)
        let reversed = run(p, lanes: Array((0..<16).reversed()), scale: 0.25)
        for lane in 0..<16 {
            let alone = run(p, lanes: [lane], scale: 0.25)[0]
            XCTAssertEqual(alone.map(\.bitPattern), all[lane].map(\.bitPattern), "lane \(lane) alone")
            XCTAssertEqual(reversed[15 - lane].map(\.bitPattern), all[lane].map(\.bitPattern), "lane \(lane) reversed")
        }
    }
}
