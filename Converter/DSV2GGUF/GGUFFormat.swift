/// The GGUF container format (version 3; version 2 has the same layout), as specified by
/// docs/gguf.md of the ggml repository. All integers are little-endian:
///
///     u32 magic "GGUF", u32 version, u64 tensor count, u64 metadata count,
///     metadata: (string key, u32 value type, value) …,
///     tensor infos: (string name, u32 dimensions, u64 ne[dimensions], u32 ggml type, u64 offset) …,
///     padding to `general.alignment` (32 by default), tensor data.
///
/// A string is a u64 byte length and that many UTF-8 bytes. `ne[0]` is the innermost (fastest)
/// axis: a GGUF [ne0, ne1] matrix is the row-major [ne1, ne0] matrix of PyTorch.
public enum GGUFFormat {
    public static let magic: [UInt8] = Array("GGUF".utf8)
    public static let versions: ClosedRange<UInt32> = 2...3
    public static let writtenVersion: UInt32 = 3
    public static let defaultAlignment = 32
    /// ggml's GGML_MAX_DIMS.
    public static let maxDimensions = 4
}

/// The type of a metadata value (`gguf_type`).
public enum GGUFValueType: UInt32, Sendable, CaseIterable {
    case uint8 = 0, int8 = 1, uint16 = 2, int16 = 3, uint32 = 4, int32 = 5, float32 = 6, bool = 7
    case string = 8, array = 9, uint64 = 10, int64 = 11, float64 = 12

    /// Bytes of one value of a fixed-size type (nil for string and array).
    var fixedSize: Int? {
        switch self {
        case .uint8, .int8, .bool: return 1
        case .uint16, .int16: return 2
        case .uint32, .int32, .float32: return 4
        case .uint64, .int64, .float64: return 8
        case .string, .array: return nil
        }
    }
}

/// A metadata value. Integers keep their GGUF type so a file can be rewritten as it was.
public enum GGUFValue: Equatable, Sendable {
    case uint(UInt64, GGUFValueType)
    case int(Int64, GGUFValueType)
    case float(Double, GGUFValueType)
    case bool(Bool)
    case string(String)
    /// Element type and elements (arrays of arrays are refused when reading).
    case array(GGUFValueType, [GGUFValue])

    public var type: GGUFValueType {
        switch self {
        case let .uint(_, t), let .int(_, t), let .float(_, t): return t
        case .bool: return .bool
        case .string: return .string
        case .array: return .array
        }
    }

    /// The value as an integer, when it is one (of any width or sign) and fits.
    public var intValue: Int? {
        switch self {
        case let .uint(v, _): return v <= UInt64(Int.max) ? Int(v) : nil
        case let .int(v, _): return Int(exactly: v)
        default: return nil
        }
    }

    /// The value as a floating-point number (integers convert).
    public var doubleValue: Double? {
        switch self {
        case let .float(v, _): return v
        case let .uint(v, _): return Double(v)
        case let .int(v, _): return Double(v)
        default: return nil
        }
    }

    public var boolValue: Bool? { if case let .bool(v) = self { return v } else { return nil } }
    public var stringValue: String? { if case let .string(v) = self { return v } else { return nil } }
    public var arrayValue: [GGUFValue]? { if case let .array(_, v) = self { return v } else { return nil } }

    /// A short rendering for `dsv2 inspect` (long arrays summarised).
    public var summary: String {
        switch self {
        case let .uint(v, _): return "\(v)"
        case let .int(v, _): return "\(v)"
        case let .float(v, t): return t == .float32 ? "\(Float(v))" : "\(v)"
        case let .bool(v): return "\(v)"
        case let .string(s):
            let flat = s.replacingOccurrences(of: "\n", with: "\\n")
            return flat.count > 80 ? "\"\(flat.prefix(77))…\" (\(s.utf8.count) bytes)" : "\"\(flat)\""
        case let .array(t, items):
            let head = items.prefix(4).map(\.summary).joined(separator: ", ")
            return "[\(head)\(items.count > 4 ? ", …" : "")] (\(items.count) \(t))"
        }
    }
}

/// The ggml tensor types this reader knows (`ggml_type`), with their block geometry.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
    case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35
    case mxfp4 = 39

    /// ggml's name of the type (`Q4_0`, `Q2_K`, `IQ4_NL`, …).
    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq2_xxs: return "IQ2_XXS"
        case .iq2_xs: return "IQ2_XS"
        case .iq3_xxs: return "IQ3_XXS"
        case .iq1_s: return "IQ1_S"
        case .iq4_nl: return "IQ4_NL"
        case .iq3_s: return "IQ3_S"
        case .iq2_s: return "IQ2_S"
        case .iq4_xs: return "IQ4_XS"
        case .i8: return "I8"
        case .i16: return "I16"
        case .i32: return "I32"
        case .i64: return "I64"
        case .f64: return "F64"
        case .iq1_m: return "IQ1_M"
        case .bf16: return "BF16"
        case .tq1_0: return "TQ1_0"
        case .tq2_0: return "TQ2_0"
        case .mxfp4: return "MXFP4"
        }
    }

    /// Values per block (1 for the plain types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
        default: return 256
        }
    }

    /// Bytes per block (ggml's type traits).
    public var bytesPerBlock: Int {
        let k = 256
        switch self {
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .f64, .i64: return 8
        case .i8: return 1
        case .q4_0: return 2 + 16
        case .q4_1: return 4 + 16
        case .q5_0: return 2 + 4 + 16
        case .q5_1: return 4 + 4 + 16
        case .q8_0: return 2 + 32
        case .q8_1: return 8 + 32
        case .q2_K: return 4 + k / 16 + k / 4
        case .q3_K: return 2 + k / 4 + k / 8 + 12
        case .q4_K: return 4 + k / 2 + 12
        case .q5_K: return 4 + k / 2 + k / 8 + 12
        case .q6_K: return 2 + k / 2 + k / 4 + k / 16
        case .q8_K: return 4 + k + k / 8
        case .iq2_xxs: return 2 + k / 4
        case .iq2_xs: return 2 + k / 4 + k / 32
        case .iq3_xxs: return 2 + k / 4 + k / 8
        case .iq1_s: return 2 + k / 8 + k / 16
        case .iq4_nl: return 2 + 16
        case .iq3_s: return 2 + k / 4 + k / 8 + k / 32 + 4
        case .iq2_s: return 2 + k / 4 + k / 16
        case .iq4_xs: return 4 + k / 2 + k / 64
        case .iq1_m: return k / 8 + k / 16 + k / 32
        case .tq1_0: return 2 + 4 * 13
        case .tq2_0: return 2 + 64
        case .mxfp4: return 1 + 16
        }
    }

    /// Whether `GGMLBlocks.dequantize` defines this type (the ones dsv2 reads).
    public var isReadable: Bool {
        switch self {
        case .f32, .f16, .bf16, .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K: return true
        default: return false
        }
    }
}

/// A malformed or unsupported GGUF file; every case names the file and the key or tensor at fault.
public struct GGUFError: Error, CustomStringConvertible, Equatable {
    public var path: String
    /// The metadata key or tensor name at fault, when there is one.
    public var subject: String?
    public var message: String
    /// Whether writing `path` failed (otherwise the file read is at fault).
    public var writing: Bool

    public init(path: String, subject: String? = nil, _ message: String, writing: Bool = false) {
        self.path = path
        self.subject = subject
        self.message = message
        self.writing = writing
    }

    public var description: String {
        if let subject { return "\(path): \(subject): \(message)" }
        return "\(path): \(message)"
    }
}
