import DSV2Quantized

/// Deterministic random numbers for the kernel tests (SplitMix64).
struct KernelRandom {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1, 1).
    mutating func float() -> Float { Float(Double(next() >> 11) / Double(1 << 53) * 2 - 1) }
    mutating func int(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound + Int(next() % UInt64(range.count))
    }
    /// Values with a spread of magnitudes per block (like real weights and activations).
    mutating func floats(_ count: Int, scale: Float = 1) -> [Float] {
        (0..<count).map { i in float() * scale * (i % 7 == 0 ? 4 : 1) }
    }
}

/// The scalar reference of one output: Σ_c deq(W[r, c]) · a_c, in Double, and Σ |terms| (for
/// the rounding bound). For q8/q4, `a` is the activation after the same int8 quantization as the
/// kernels use (`ScalarQuantization.quantizeActivationBlock`); for float types, x itself.
func referenceDot(_ w: QuantizedMatrix, row: Int, x: [Float]) -> (value: Double, magnitude: Double) {
    var wr = [Float](repeating: 0, count: w.columns)
    wr.withUnsafeMutableBufferPointer { w.dequantizeRow(row, into: $0.baseAddress!) }
    let a = w.type.isQuantized ? quantizedActivations(x) : x.map(Double.init)
    var value = 0.0, magnitude = 0.0
    for c in 0..<w.columns {
        let term = Double(wr[c]) * a[c]
        value += term
        magnitude += abs(term)
    }
    return (value, magnitude)
}

/// da · q per element, with the normative activation quantization.
func quantizedActivations(_ x: [Float]) -> [Double] {
    var out = [Double](repeating: 0, count: x.count)
    var q = [Int8](repeating: 0, count: 32)
    x.withUnsafeBufferPointer { xp in
        for start in stride(from: 0, to: x.count, by: 32) {
            let d = q.withUnsafeMutableBufferPointer {
                ScalarQuantization.quantizeActivationBlock(xp.baseAddress! + start, count: min(32, x.count - start),
                                                           into: $0.baseAddress!)
            }
            for j in 0..<min(32, x.count - start) { out[start + j] = Double(d) * Double(q[j]) }
        }
    }
    return out
}

/// Runs `Kernels.matvec` on fresh activations and returns y.
func kernelMatvec(_ w: QuantizedMatrix, _ x: [Float]) -> [Float] {
    var y = [Float](repeating: .nan, count: w.rows)
    let prepared = x.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: w.columns) }
    y.withUnsafeMutableBufferPointer { Kernels.matvec(w, prepared, into: $0.baseAddress!) }
    return y
}

func makeMatrix(_ values: [Float], rows: Int, columns: Int, _ type: WeightType) -> QuantizedMatrix {
    values.withUnsafeBufferPointer { QuantizedMatrix.quantize($0.baseAddress!, rows: rows, columns: columns, as: type) }
}
