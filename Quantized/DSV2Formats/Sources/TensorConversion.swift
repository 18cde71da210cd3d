import Foundation

/// A tensor that cannot be converted to the requested type.
public enum TensorConversionError: Error, CustomStringConvertible, Equatable {
    /// A NaN or infinite weight: quantizing it would give garbage (a NaN scale poisons its block).
    case nonFinite(tensor: String, row: Int, column: Int)
    /// A value too large for the type (q8: a block max |x| > 65504·127, q4: > 65504·9.5, f16: > 65504).
    case scaleOverflow(tensor: String, type: WeightType, row: Int, column: Int)
    /// One of the above, naming the file the tensor was read from.
    indirect case located(file: String, TensorConversionError)

    public var description: String {
        switch self {
        case let .located(file, error):
            return "\(file): tensor \(error)"
        case let .nonFinite(tensor, row, column):
            return "\(tensor): non-finite weight at row \(row), column \(column); the checkpoint is damaged"
        case let .scaleOverflow(tensor, type, row, column):
            return "\(tensor): value near row \(row), column \(column) is too large for \(type) (its f16 scale overflows)"
        }
    }

    func naming(_ tensor: String) -> TensorConversionError {
        switch self {
        case let .located(file, error): return .located(file: file, error.naming(tensor))
        case let .nonFinite(_, row, column): return .nonFinite(tensor: tensor, row: row, column: column)
        case let .scaleOverflow(_, type, row, column):
            return .scaleOverflow(tensor: tensor, type: type, row: row, column: column)
        }
    }
}

/// Converts a tensor between weight types: q8/q4 with `FastQuantization` (SIMD, bit-identical to
/// the normative `ScalarQuantization`), float types by rounding.
///
/// Non-finite weights are rejected with `TensorConversionError` naming the tensor and position
/// (every target type, a tensor passed through too: they would be garbage). Converting *to* f32
/// or bf16 flushes subnormal values (|x| < 2⁻¹²⁶) to zero of the same sign: they change nothing
/// measurable and make the float kernels several times slower. A tensor already of the target
/// type is passed through (after the finiteness check).
///
/// Both the converter (HF → container) and the engine's in-memory quantization of a HF folder
/// call `convert`, so their bytes are identical. Work is done in chunks of rows, so the scratch
/// memory stays small (a few MiB) whatever the tensor size, and the chunks run in parallel.
public enum TensorConversion {
    /// Rows per chunk: about 256 Ki floats of scratch.
    static func rowsPerChunk(columns: Int) -> Int { max(1, (1 << 18) / max(columns, 1)) }

    /// `convert(_:to:threads:)`, its errors naming `file`, the file the tensor was read from.
    public static func convert(_ tensor: StoredTensor, to type: WeightType, threads: Int = 1, file: String) throws -> StoredTensor {
        do { return try convert(tensor, to: type, threads: threads) } catch let error as TensorConversionError {
            throw TensorConversionError.located(file: file, error)
        }
    }

    /// `tensor` stored as `type`. Same type: the tensor itself (no copy). Otherwise a new
    /// `AlignedBuffer`-owned tensor. Quantized sources are dequantized first (re-quantizing q8 →
    /// q4 compounds the errors; converting from the original checkpoint is better).
    public static func convert(_ tensor: StoredTensor, to type: WeightType, threads: Int = 1) throws -> StoredTensor {
        if tensor.type == type {
            // Passed through, so checked here: a NaN must not reach a container or an engine.
            if let (row, column) = tensor.firstNonFinite() {
                throw TensorConversionError.nonFinite(tensor: tensor.name, row: row, column: column)
            }
            return tensor
        }
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        let output = AlignedBuffer(byteCount: type.byteCount(rows: rows, columns: columns))
        let chunkRows = rowsPerChunk(columns: columns)
        let chunks = (rows + chunkRows - 1) / chunkRows
        let source = tensor.bytes.baseAddress!
        let sourceType = tensor.type
        let failures = FirstFailure()
        let work = { (chunk: Int) in
            let first = chunk * chunkRows
            let count = min(chunkRows, rows - first)
            let floats = UnsafeMutablePointer<Float>.allocate(capacity: count * columns)
            defer { floats.deallocate() }
            decodeRows(source, type: sourceType, rows: rows, columns: columns, first: first, count: count, into: floats)
            do {
                try encodeRows(floats, type: type, rows: rows, columns: columns, first: first, count: count,
                               into: output.pointer)
            } catch let error as TensorConversionError {
                failures.record(error, chunk: chunk)
            } catch {}
        }
        if threads > 1, chunks > 1 {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: work)
        } else {
            for chunk in 0..<chunks { work(chunk) }
        }
        if let error = failures.first { throw error.naming(tensor.name) }
        return StoredTensor(name: tensor.name, type: type, shape: tensor.shape,
                            bytes: output.bytes, owner: output)
    }

    /// Rows `first ..< first + count` of a `[rows, columns]` tensor of `type` as floats.
    static func decodeRows(_ source: UnsafeRawPointer, type: WeightType, rows: Int, columns: Int,
                           first: Int, count: Int, into out: UnsafeMutablePointer<Float>) {
        let n = count * columns
        switch type {
        case .f32:
            UnsafeMutableRawPointer(out).copyMemory(from: source + first * columns * 4, byteCount: n * 4)
        case .f16:
            let input = (source + first * columns * 2).assumingMemoryBound(to: Float16.self)
            for i in 0..<n { out[i] = Float(input[i]) }
        case .bf16:
            let input = (source + first * columns * 2).assumingMemoryBound(to: UInt16.self)
            for i in 0..<n { out[i] = Float(bitPattern: UInt32(input[i]) << 16) }
        case .q8, .q4:
            // Re-assemble the chunk in the two-plane layout of a `count`-row tensor, then use the
            // normative dequantizer.
            let blocks = WeightType.blocksPerRow(columns)
            let quantRow = blocks * type.quantBytesPerBlock
            let chunk = AlignedBuffer(byteCount: type.byteCount(rows: count, columns: columns))
            chunk.pointer.copyMemory(from: source + first * quantRow, byteCount: count * quantRow)
            (chunk.pointer + type.scalesOffset(rows: count, columns: columns)).copyMemory(
                from: source + type.scalesOffset(rows: rows, columns: columns) + first * blocks * 2,
                byteCount: count * blocks * 2)
            ScalarQuantization.dequantize(chunk.pointer, rows: count, columns: columns, as: type, into: out)
        }
    }

    /// Stores `count` rows of floats as rows `first ..< first + count` of a `[rows, columns]`
    /// tensor of `type` at `destination` (row numbers in errors are the tensor's).
    static func encodeRows(_ floats: UnsafeMutablePointer<Float>, type: WeightType, rows: Int, columns: Int,
                           first: Int, count: Int, into destination: UnsafeMutableRawPointer) throws {
        do {
            if !type.isQuantized {
                try checkFloats(floats, count: count * columns, columns: columns, type: type)
                ScalarQuantization.quantize(floats, rows: count, columns: columns, as: type,
                                            into: destination + first * columns * type.bytesPerElement)
                return
            }
            let blocks = WeightType.blocksPerRow(columns)
            let quants = (destination + first * blocks * type.quantBytesPerBlock).assumingMemoryBound(to: UInt8.self)
            let scales = (destination + type.scalesOffset(rows: rows, columns: columns)).assumingMemoryBound(to: Float16.self)
                + first * blocks
            if first == 0 {
                // Zero the alignment gap between the planes so the bytes are deterministic.
                let quantBytes = rows * blocks * type.quantBytesPerBlock
                (destination + quantBytes).initializeMemory(
                    as: UInt8.self, repeating: 0, count: type.scalesOffset(rows: rows, columns: columns) - quantBytes)
            }
            try FastQuantization.quantizeRows(floats, rows: count, columns: columns, as: type, quants: quants, scales: scales)
        } catch let TensorConversionError.nonFinite(tensor, row, column) {
            throw TensorConversionError.nonFinite(tensor: tensor, row: first + row, column: column)
        } catch let TensorConversionError.scaleOverflow(tensor, type, row, column) {
            throw TensorConversionError.scaleOverflow(tensor: tensor, type: type, row: first + row, column: column)
        }
    }

    /// Rejects non-finite values (and, for f16, values beyond its range); flushes subnormals to
    /// signed zero for f32/bf16 targets.
    static func checkFloats(_ x: UnsafeMutablePointer<Float>, count: Int, columns: Int, type: WeightType) throws {
        let limit: Float = type == .f16 ? 65504 : .greatestFiniteMagnitude
        for i in 0..<count {
            let magnitude = abs(x[i])
            if !(magnitude <= limit) {
                if magnitude.isFinite {
                    throw TensorConversionError.scaleOverflow(tensor: "", type: type, row: i / columns, column: i % columns)
                }
                throw TensorConversionError.nonFinite(tensor: "", row: i / columns, column: i % columns)
            }
            if type != .f16, magnitude < .leastNormalMagnitude { x[i] = x[i].sign == .minus ? -0.0 : 0 }
        }
    }
}

/// The failure of the lowest-numbered chunk (so the error is deterministic under threads).
final class FirstFailure: @unchecked Sendable {
    private let lock = NSLock()
    private var chunk = Int.max
    private(set) var first: TensorConversionError?

    func record(_ error: TensorConversionError, chunk: Int) {
        lock.lock()
        defer { lock.unlock() }
        if chunk < self.chunk { self.chunk = chunk; first = error }
    }
}
