import DSV2Core
import Foundation

/// max |actual − expected| / max |expected|: the error relative to the expected tensor's
/// magnitude (the absolute error when `expected` is all zeros).
public func relativeError(_ actual: [Float], _ expected: [Float]) -> Float {
    precondition(actual.count == expected.count, "size \(actual.count) vs \(expected.count)")
    var worst: Float = 0, scale: Float = 0
    for i in expected.indices {
        worst = max(worst, abs(actual[i] - expected[i]))
        scale = max(scale, abs(expected[i]))
    }
    return scale == 0 ? worst : worst / scale
}

/// sqrt(Σ(actual − expected)² / Σ expected²) in float64: the error relative to the expected
/// tensor's size.
public func relativeRMS(_ actual: [Float], _ expected: [Float]) -> Double {
    precondition(actual.count == expected.count, "size \(actual.count) vs \(expected.count)")
    var error = 0.0, size = 0.0
    for (a, e) in zip(actual, expected) { error += Double(a - e) * Double(a - e); size += Double(e) * Double(e) }
    return size == 0 ? error.squareRoot() : (error / size).squareRoot()
}

extension SplitMix64 {
    /// Standard normal (Box-Muller).
    public mutating func normal() -> Double {
        let u = max(nextUnitDouble(), 1e-300), v = nextUnitDouble()
        return (-2 * log(u)).squareRoot() * cos(2 * .pi * v)
    }

    /// Uniform in [-1, 1).
    public mutating func float() -> Float { Float(nextUnitDouble() * 2 - 1) }
    public mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
    /// Values with a spread of magnitudes per block (like real weights and activations).
    public mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { i in float() * scale * (i % 7 == 0 ? 4 : 1) }
    }
}
