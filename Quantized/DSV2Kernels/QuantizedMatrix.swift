import DSV2Formats
/// A weight matrix W [rows, columns] in one of the `WeightType` layouts, used in place: `data`
/// points at the bytes exactly as the container stores them (an mmap), or at an
/// `AlignedBuffer`; `owner` keeps that storage alive. Rows are outputs, columns are inputs
/// (the PyTorch `nn.Linear.weight` orientation): y = W·x.
///
/// For q8/q4 the quants and the scales are two planes (see `WeightType`); `quants` and `scales`
/// point at this matrix's first row in each, so a row slice (`rows(_:)`, e.g. one expert of a
/// stacked tensor, or the K half of `kv_b_proj`) is again a `QuantizedMatrix` without copying.
public struct QuantizedMatrix: @unchecked Sendable {
    public let type: WeightType
    public let rows: Int
    public let columns: Int
    /// First byte of row 0 (of the quants plane for q8/q4).
    public let data: UnsafeRawPointer
    /// First f16 scale of row 0 (q8/q4 only; equals `data` for the float types).
    public let scales: UnsafeRawPointer
    /// Keeps the storage alive (a mapped file, an `AlignedBuffer`), or nil if the caller does.
    public let owner: AnyObject?

    /// Wraps `byteCount` bytes laid out as `type` [rows, columns] (the whole tensor, both planes).
    /// Throws if the size does not match the layout, so a truncated file never reads past its end.
    public init(type: WeightType, rows: Int, columns: Int, data: UnsafeRawPointer, byteCount: Int,
                owner: AnyObject?, name: String = "?") throws {
        guard rows > 0, columns > 0 else { throw KernelError.invalidShape(name: name, rows: rows, columns: columns) }
        let expected = type.byteCount(rows: rows, columns: columns)
        guard byteCount == expected else {
            throw KernelError.byteCountMismatch(name: name, type: type, rows: rows, columns: columns,
                                                expected: expected, actual: byteCount)
        }
        self.init(type: type, rows: rows, columns: columns, data: data,
                  scales: type.isQuantized ? data + type.scalesOffset(rows: rows, columns: columns) : data,
                  owner: owner)
    }

    init(type: WeightType, rows: Int, columns: Int, data: UnsafeRawPointer, scales: UnsafeRawPointer, owner: AnyObject?) {
        self.type = type
        self.rows = rows
        self.columns = columns
        self.data = data
        self.scales = scales
        self.owner = owner
    }

    /// Quantizes row-major floats [rows, columns] with the normative scalar code into a new
    /// 64-byte-aligned buffer (tests, benchmarks, and tensors quantized at load time).
    public static func quantize(_ values: UnsafePointer<Float>, rows: Int, columns: Int,
                                as type: WeightType) -> QuantizedMatrix {
        precondition(rows > 0 && columns > 0, "QuantizedMatrix.quantize: empty shape")
        let buffer = AlignedBuffer(byteCount: type.byteCount(rows: rows, columns: columns))
        ScalarQuantization.quantize(values, rows: rows, columns: columns, as: type, into: buffer.pointer)
        return try! QuantizedMatrix(type: type, rows: rows, columns: columns, data: buffer.pointer,
                                    byteCount: buffer.byteCount, owner: buffer)
    }

    /// Blocks of 32 per row (q8/q4).
    public var blocksPerRow: Int { WeightType.blocksPerRow(columns) }

    /// Bytes of one row in the quants plane (q8/q4) or in `data` (float types).
    public var rowStride: Int {
        type.isQuantized ? blocksPerRow * type.quantBytesPerBlock : columns * type.bytesPerElement
    }

    /// Bytes of weights (quants and scales) streamed by one mat-vec over all rows.
    public var streamedBytes: Int {
        type.isQuantized ? rows * blocksPerRow * (type.quantBytesPerBlock + 2) : rows * rowStride
    }

    /// The rows `range` as a matrix sharing this storage.
    public func rows(_ range: Range<Int>) -> QuantizedMatrix {
        precondition(range.lowerBound >= 0 && range.upperBound <= rows && !range.isEmpty,
                     "QuantizedMatrix.rows: \(range) outside 0..<\(rows)")
        let scaleOffset = type.isQuantized ? range.lowerBound * blocksPerRow * 2 : range.lowerBound * rowStride
        return QuantizedMatrix(type: type, rows: range.count, columns: columns,
                               data: data + range.lowerBound * rowStride,
                               scales: scales + scaleOffset, owner: owner)
    }

    /// Row `row` as floats, with the normative scalar dequantization (debugging and tests).
    public func dequantizeRow(_ row: Int, into out: UnsafeMutablePointer<Float>) {
        if type.isQuantized {
            // Assemble a one-row tensor (quants then scales at the 64-byte-rounded offset).
            let one = type.byteCount(rows: 1, columns: columns)
            let tmp = AlignedBuffer(byteCount: one)
            tmp.pointer.copyMemory(from: data + row * rowStride, byteCount: rowStride)
            (tmp.pointer + type.scalesOffset(rows: 1, columns: columns))
                .copyMemory(from: scales + row * blocksPerRow * 2, byteCount: blocksPerRow * 2)
            ScalarQuantization.dequantize(tmp.pointer, rows: 1, columns: columns, as: type, into: out)
        } else {
            ScalarQuantization.dequantize(data + row * rowStride, rows: 1, columns: columns, as: type, into: out)
        }
    }
}
