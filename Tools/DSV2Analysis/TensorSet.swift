import Foundation
import DSV2Core

/// A named collection of tensors to compare: a dump file or the tracer of one engine run.
public struct TensorSet {
    /// What the tensors come from (a file path, `reference`, `quantized:q4`), shown in reports.
    public var label: String
    public var tensors: [String: TracedTensor]

    public init(label: String, tensors: [String: TracedTensor]) {
        self.label = label
        self.tensors = tensors
    }

    /// Every tensor of a safetensors dump: floating-point dtypes widen to fp32, I32/I64 to Int32.
    /// Errors name the file and the tensor.
    public init(safetensors url: URL) throws {
        let file = try SafetensorsFile(url: url)
        var tensors: [String: TracedTensor] = [:]
        for name in file.tensorNames {
            let info = try file.info(name)
            switch info.dtype {
            case .i32, .i64:
                tensors[name] = TracedTensor(shape: info.shape, int32s: try file.int32s(name))
            default:
                tensors[name] = TracedTensor(shape: info.shape, floats: try file.floats(name))
            }
        }
        self.init(label: url.path, tensors: tensors)
    }

    /// The tensors a `RecordingTracer` kept.
    public init(label: String, tracer: RecordingTracer) {
        self.init(label: label, tensors: tracer.tensors)
    }

    public var names: [String] { TraceOrder.sorted(tensors.keys) }
}

extension TracedTensor {
    /// The values as fp32 (Int32 values converted exactly up to 2^24).
    var floatValues: [Float] {
        switch values {
        case let .float(v): return v
        case let .int32(v): return v.map(Float.init)
        }
    }

    var elementTypeName: String {
        switch values {
        case .float: return "f32"
        case .int32: return "i32"
        }
    }
}
