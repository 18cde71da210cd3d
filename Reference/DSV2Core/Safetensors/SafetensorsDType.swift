import Foundation

/// Element types of the safetensors format (the header's `dtype` strings).
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case f64 = "F64", f32 = "F32", f16 = "F16", bf16 = "BF16"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether `floats(_:)` can widen this type to fp32.
    public var isFloatingPoint: Bool { self == .f32 || self == .f16 || self == .bf16 || self == .f64 }

    /// The format to scan for NaN and infinity in place (nil for F64 and the integer types).
    public var floatFormat: FloatFormat? {
        switch self {
        case .f32: return .f32
        case .f16: return .f16
        case .bf16: return .bf16
        default: return nil
        }
    }
}

/// Conversions from raw little-endian bytes. The bytes need not be aligned.
public enum ElementConversion {
    /// Widens `count` elements of `dtype` at `source` into fp32 (BF16 exactly: bits << 16,
    /// docs/NUMERICS.md item 14; F16 exactly; F64 rounded).
    public static func widen(_ source: UnsafeRawBufferPointer, dtype: SafetensorsDType, into out: UnsafeMutablePointer<Float>, count: Int) {
        switch dtype {
        case .f32:
            if count > 0 { memcpy(out, source.baseAddress!, count * 4) }
        case .bf16:
            for i in 0..<count {
                let bits = source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                out[i] = Float(bitPattern: UInt32(UInt16(littleEndian: bits)) << 16)
            }
        case .f16:
            for i in 0..<count {
                let bits = source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)
                out[i] = Float(Float16(bitPattern: UInt16(littleEndian: bits)))
            }
        case .f64:
            for i in 0..<count {
                out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self))
            }
        default:
            preconditionFailure("widen called on \(dtype)")  // callers check isFloatingPoint first
        }
    }
}
