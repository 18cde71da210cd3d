import Foundation
import DSV2Core
import DSV2Formats
import DSV2Kernels

/// The element-wise steps only the quantized engine has (it works in place on preallocated
/// buffers); RMSNorm, softmax, SiLU and RoPE are DSV2Core's (`Elementwise`, `RotaryEmbedding`),
/// which the reference calls too, so the two engines compute them identically.
enum EngineMath {
    /// h[i] = silu(gate[i]) · up[i] for `count` values (every MLP, docs/NUMERICS.md item 11).
    @inline(__always)
    static func gatedActivation(gate: UnsafePointer<Float>, up: UnsafePointer<Float>, count: Int,
                                into h: UnsafeMutablePointer<Float>) {
        for i in 0..<count { h[i] = Elementwise.silu(gate[i]) * up[i] }
    }

    /// out[i] += x[i].
    @inline(__always)
    static func add(_ x: UnsafePointer<Float>, into out: UnsafeMutablePointer<Float>, count: Int) {
        for i in 0..<count { out[i] += x[i] }
    }
}
