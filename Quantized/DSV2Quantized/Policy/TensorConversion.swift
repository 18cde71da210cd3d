import Foundation

/// Converts a tensor between weight types with the normative `ScalarQuantization` routines.
///
/// Both the converter (HF → container) and the engine's in-memory quantization of a HF folder
/// call `convert`, so their bytes are identical. Work is done in chunks of rows, so the scratch
/// memory stays small (a few MiB) whatever the tensor size, and the chunks run in parallel.
public enum TensorConversion {
    /// Rows per chunk: about 256 Ki floats of scratch.
    static func rowsPerChunk(columns: Int) -> Int { max(1, (1 << 18) / max(columns, 1)) }

    /// `tensor` stored as `type`. Same type: the tensor itself (no copy). Otherwise a new
    /// `TensorBuffer`-owned tensor. Quantized sources are dequantized first (re-quantizing q8 →
    /// q4 compounds the errors; converting from the original checkpoint is better).
    public static func convert(_ tensor: StoredTensor, to type: WeightType, threads: Int = 1) -> StoredTensor {
        if tensor.type == type { return tensor }
        let (rows, columns) = StoredTensor.rowsAndColumns(tensor.shape)
        let output = TensorBuffer(count: type.byteCount(rows: rows, columns: columns))
        let chunkRows = rowsPerChunk(columns: columns)
        let chunks = (rows + chunkRows - 1) / chunkRows
        let source = tensor.bytes.baseAddress!
        let sourceType = tensor.type
        let work = { (chunk: Int) in
            let first = chunk * chunkRows
            let count = min(chunkRows, rows - first)
            let floats = UnsafeMutablePointer<Float>.allocate(capacity: count * columns)
            defer { floats.deallocate() }
            decodeRows(source, type: sourceType, rows: rows, columns: columns, first: first, count: count, into: floats)
            encodeRows(floats, type: type, rows: rows, columns: columns, first: first, count: count, into: output.pointer)
        }
        if threads > 1, chunks > 1 {
            DispatchQueue.concurrentPerform(iterations: chunks, execute: work)
        } else {
            for chunk in 0..<chunks { work(chunk) }
        }
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
            let chunk = TensorBuffer(count: type.byteCount(rows: count, columns: columns))
            chunk.pointer.copyMemory(from: source + first * quantRow, byteCount: count * quantRow)
            (chunk.pointer + type.scalesOffset(rows: count, columns: columns)).copyMemory(
                from: source + type.scalesOffset(rows: rows, columns: columns) + first * blocks * 2,
                byteCount: count * blocks * 2)
            ScalarQuantization.dequantize(chunk.pointer, rows: count, columns: columns, as: type, into: out)
        }
    }

    /// Stores `count` rows of floats as rows `first ..< first + count` of a `[rows, columns]`
    /// tensor of `type` at `destination`.
    static func encodeRows(_ floats: UnsafePointer<Float>, type: WeightType, rows: Int, columns: Int,
                           first: Int, count: Int, into destination: UnsafeMutableRawPointer) {
        if !type.isQuantized {
            ScalarQuantization.quantize(floats, rows: count, columns: columns, as: type,
                                        into: destination + first * columns * type.bytesPerElement)
            return
        }
        let blocks = WeightType.blocksPerRow(columns)
        let quantRow = blocks * type.quantBytesPerBlock
        let chunk = TensorBuffer(count: type.byteCount(rows: count, columns: columns))
        ScalarQuantization.quantize(floats, rows: count, columns: columns, as: type, into: chunk.pointer)
        (destination + first * quantRow).copyMemory(from: chunk.pointer, byteCount: count * quantRow)
        (destination + type.scalesOffset(rows: rows, columns: columns) + first * blocks * 2).copyMemory(
            from: chunk.pointer + type.scalesOffset(rows: count, columns: columns), byteCount: count * blocks * 2)
    }
}
