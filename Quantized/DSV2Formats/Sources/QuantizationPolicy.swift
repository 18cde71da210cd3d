/// Which `WeightType` each tensor is stored as, decided from its name and shape (see
/// `TensorRole`). The presets are documented in docs/FORMAT.md ("Quantization presets").
///
/// Rules common to every preset: 1-D tensors (norms) are never quantized; the router
/// (`mlp.gate.weight`) stays f32 in the quantized presets because its softmax over all experts
/// decides the routing (docs/NUMERICS.md item 8: the gate runs in fp32) and it is tiny.
public struct QuantizationPolicy: Sendable, Equatable, CustomStringConvertible {
    /// The preset name (`q8`, `q4`, `q4-mixed`, `f16`, `bf16`, `f32`).
    public let name: String
    /// Type per role; roles absent here use `defaultType`.
    public let types: [TensorRole: WeightType]
    public let defaultType: WeightType

    public init(name: String, defaultType: WeightType, types: [TensorRole: WeightType] = [:]) {
        self.name = name
        self.defaultType = defaultType
        self.types = types
    }

    /// The storage type of tensor `name` of `shape`.
    public func type(for name: String, shape: [Int]) -> WeightType {
        let role = TensorRole.classify(name: name, shape: shape)
        let chosen = types[role] ?? defaultType
        // 1-D tensors are never quantized, whatever a custom policy says.
        if role == .norm, chosen.isQuantized { return .f32 }
        return chosen
    }

    public var description: String { name }

    public static let presetNames = ["q8", "q4", "q4-mixed", "f16", "bf16", "f32"]

    /// q8: every matrix q8; norms and router f32.
    public static let q8 = QuantizationPolicy(name: "q8", defaultType: .q8,
                                              types: [.norm: .f32, .router: .f32])
    /// q4: every matrix q4 except the embedding and lm_head (q8: the embedding is only looked up,
    /// so q8 rows cost no speed; lm_head errors hit every logit directly); norms and router f32.
    public static let q4 = QuantizationPolicy(name: "q4", defaultType: .q4,
                                              types: [.norm: .f32, .router: .f32,
                                                      .embedding: .q8, .lmHead: .q8])
    /// q4-mixed (quality first): routed experts q4 (the bulk of the parameters, each used by few
    /// tokens); attention, shared experts, dense MLP, embedding and lm_head q8; norms and router f32.
    public static let q4Mixed = QuantizationPolicy(name: "q4-mixed", defaultType: .q8,
                                                   types: [.norm: .f32, .router: .f32, .routedExpert: .q4])
    /// Float presets: every tensor in that type (lossless where the source already is that type).
    public static let f16 = QuantizationPolicy(name: "f16", defaultType: .f16)
    public static let bf16 = QuantizationPolicy(name: "bf16", defaultType: .bf16)
    public static let f32 = QuantizationPolicy(name: "f32", defaultType: .f32)

    /// The preset called `name`, or nil.
    public static func preset(_ name: String) -> QuantizationPolicy? {
        switch name.lowercased() {
        case "q8": return .q8
        case "q4": return .q4
        case "q4-mixed", "q4mixed": return .q4Mixed
        case "f16": return .f16
        case "bf16": return .bf16
        case "f32": return .f32
        default: return nil
        }
    }
}
