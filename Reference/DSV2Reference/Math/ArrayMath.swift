import DSV2Core

/// RMSNorm of `x` [rows, width] into a new array (the reference's array form).
func rmsNorm(_ x: [Float], rows: Int, width: Int, weight: [Float], eps: Float) -> [Float] {
    var y = [Float](repeating: 0, count: rows * width)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer {
            Elementwise.rmsNorm(xp.baseAddress!, rows: rows, width: width, weight: weight, eps: eps, into: $0.baseAddress!)
        }
    }
    return y
}

/// out[i] += x[i] for `count` values.
@inline(__always)
func addInPlace(_ out: inout [Float], _ x: [Float]) {
    precondition(out.count == x.count)
    out.withUnsafeMutableBufferPointer { o in
        x.withUnsafeBufferPointer { v in
            for i in 0..<o.count { o[i] += v[i] }
        }
    }
}
