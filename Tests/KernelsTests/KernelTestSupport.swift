import DSV2Core
import DSV2Formats
import DSV2Kernels
import TestSupport

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

/// Runs `Kernels.matvec` on fresh activations prepared for `kernels` and returns y.
func kernelMatvec(_ w: QuantizedMatrix, _ x: [Float], kernels: KernelTable = .native) -> [Float] {
    var y = [Float](repeating: .nan, count: w.rows)
    let prepared = x.withUnsafeBufferPointer { PreparedActivations($0.baseAddress!, columns: w.columns, kernels: kernels) }
    y.withUnsafeMutableBufferPointer { Kernels.matvec(w, prepared, into: $0.baseAddress!) }
    return y
}

func makeMatrix(_ values: [Float], rows: Int, columns: Int, _ type: WeightType) -> QuantizedMatrix {
    values.withUnsafeBufferPointer { QuantizedMatrix.quantize($0.baseAddress!, rows: rows, columns: columns, as: type) }
}
