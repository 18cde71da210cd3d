import Foundation
#if canImport(Glibc)
import Glibc
import DSV2Core
#endif

/// The logits of a perplexity run at every scored position, saved with `dsv2 perplexity
/// --save-base` and read back with `--kl-base` to measure another engine or quantization against.
///
/// Layout (little-endian; docs/COMPARE.md "Perplexity base files"):
///
///   offset  size  field
///        0     8  magic "DSV2LOGB"
///        8     4  u32 format version (1)
///       12     4  u32 row element type (1 = f32)
///       16     4  u32 vocab: values per row
///       20     4  u32 ctx: window length the rows were made with
///       24     8  u64 token count of the encoded text
///       32     8  u64 rows: scored positions (token count − number of windows)
///       40     8  u64 FNV-1a 64 hash of ctx (u32) followed by the token ids (i32 each)
///       48     8  f64 mean −log p of the run that wrote the file
///       56     8  reserved (0)
///       64        rows × vocab f32: raw logits, window by window, positions 0 … n−2 of each
///
/// Rows are raw fp32 logits, not rounded log-probabilities, so a run against the base made by the
/// same engine reproduces it bit for bit (KL exactly 0). Size: 64 + rows × vocab × 4 bytes
/// (e.g. 63k tokens of DeepSeek-V2 text, vocab 102400: 26 GB; tiny-dsv2, vocab 6021: 1.5 GB).
public enum LogitsBaseFormat {
    public static let magic = Array("DSV2LOGB".utf8)
    public static let version: UInt32 = 1
    public static let elementTypeF32: UInt32 = 1
    public static let headerSize = 64

    /// FNV-1a 64 over ctx (u32 LE) then every token id (i32 LE): ties a base file to its text and ctx.
    public static func hash(tokens: [Int32], ctx: Int) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        func mix(_ v: UInt32) {
            var v = v
            for _ in 0..<4 {
                h ^= UInt64(v & 0xff)
                h = h &* 0x0000_0100_0000_01b3
                v >>= 8
            }
        }
        mix(UInt32(truncatingIfNeeded: ctx))
        for t in tokens { mix(UInt32(bitPattern: t)) }
        return h
    }
}

/// A `--save-base`/`--kl-base` file that cannot be used; names the file.
public enum LogitsBaseError: Error, CustomStringConvertible, Equatable {
    case malformed(file: String, reason: String)
    case mismatch(file: String, reason: String)
    case writeFailed(file: String, reason: String)

    public var description: String {
        switch self {
        case let .malformed(file, reason): return "\(file): not a usable perplexity base file: \(reason)"
        case let .mismatch(file, reason): return "\(file): does not match this run: \(reason)"
        case let .writeFailed(file, reason): return "\(file): cannot write perplexity base file: \(reason)"
        }
    }
}

/// Reads a base file (memory-mapped, bounds-checked).
public final class LogitsBaseFile {
    public let url: URL
    public let vocab: Int
    public let ctx: Int
    public let tokenCount: Int
    public let rows: Int
    public let tokenHash: UInt64
    /// Mean −log p of the run that wrote it.
    public let meanNLL: Double
    private let mapped: MappedFile

    public init(url: URL) throws {
        self.url = url
        do { mapped = try MappedFile(path: url.path) } catch {
            throw LogitsBaseError.malformed(file: url.path, reason: "\(error)")
        }
        guard mapped.size >= LogitsBaseFormat.headerSize,
              let header = try? mapped.bytes(at: 0, count: LogitsBaseFormat.headerSize) else {
            throw LogitsBaseError.malformed(file: url.path, reason: "shorter than its 64-byte header")
        }
        guard Array(header[0..<8]) == LogitsBaseFormat.magic else {
            throw LogitsBaseError.malformed(file: url.path, reason: "bad magic (expected DSV2LOGB; made by dsv2 perplexity --save-base?)")
        }
        func u32(_ o: Int) -> UInt32 { UInt32(littleEndian: header.loadUnaligned(fromByteOffset: o, as: UInt32.self)) }
        func u64(_ o: Int) -> UInt64 { UInt64(littleEndian: header.loadUnaligned(fromByteOffset: o, as: UInt64.self)) }
        guard u32(8) == LogitsBaseFormat.version else {
            throw LogitsBaseError.malformed(file: url.path, reason: "format version \(u32(8)), this dsv2 reads version \(LogitsBaseFormat.version)")
        }
        guard u32(12) == LogitsBaseFormat.elementTypeF32 else {
            throw LogitsBaseError.malformed(file: url.path, reason: "unknown row element type \(u32(12))")
        }
        vocab = Int(u32(16))
        ctx = Int(u32(20))
        guard u64(24) < UInt64(Int.max / 4), u64(32) < UInt64(Int.max / 4) else {
            throw LogitsBaseError.malformed(file: url.path, reason: "implausible token or row count")
        }
        tokenCount = Int(u64(24))
        rows = Int(u64(32))
        tokenHash = u64(40)
        meanNLL = Double(bitPattern: u64(48))
        let (bytes, overflow) = rows.multipliedReportingOverflow(by: vocab * 4)
        guard vocab > 0, !overflow, mapped.size == LogitsBaseFormat.headerSize + bytes else {
            throw LogitsBaseError.malformed(file: url.path,
                                            reason: "size \(mapped.size) bytes, expected 64 + \(rows) rows × \(vocab) × 4 (truncated?)")
        }
    }

    /// Throws a clear `mismatch` when this file was made for another model, text or ctx.
    public func check(vocab: Int, ctx: Int, tokens: [Int32]) throws {
        guard vocab == self.vocab else {
            throw LogitsBaseError.mismatch(file: url.path, reason: "its rows have \(self.vocab) logits, this model's vocabulary has \(vocab) (a different model family)")
        }
        guard ctx == self.ctx else {
            throw LogitsBaseError.mismatch(file: url.path, reason: "it was made with -c/--ctx-size \(self.ctx), this run uses -c/--ctx-size \(ctx)")
        }
        let hash = LogitsBaseFormat.hash(tokens: tokens, ctx: ctx)
        guard tokens.count == tokenCount, hash == tokenHash else {
            throw LogitsBaseError.mismatch(file: url.path, reason: String(
                format: "it was made from a different text or tokenizer (%d tokens, hash %016llx; this text: %d tokens, hash %016llx)",
                tokenCount, tokenHash, tokens.count, hash))
        }
    }

    /// Row `i` (0 ..< rows) of logits, valid while this object lives.
    public func row(_ i: Int) throws -> UnsafeBufferPointer<Float> {
        let raw = try mapped.bytes(at: LogitsBaseFormat.headerSize + i * vocab * 4, count: vocab * 4)
        return raw.bindMemory(to: Float.self)
    }
}

/// Streams rows to a temporary file next to the destination; `finish` writes the header and
/// renames it into place (no half-written base file on a crash or error).
public final class LogitsBaseWriter {
    public let url: URL
    private let temporary: URL
    private let handle: FileHandle
    private let vocab: Int, ctx: Int, tokens: [Int32]
    private var rowsWritten = 0
    private var finished = false
    private var buffer = Data()

    public init(url: URL, vocab: Int, ctx: Int, tokens: [Int32]) throws {
        self.url = url
        self.vocab = vocab
        self.ctx = ctx
        self.tokens = tokens
        temporary = TemporaryOutput.begin(url)
        guard FileManager.default.createFile(atPath: temporary.path, contents: Data(count: LogitsBaseFormat.headerSize)),
              let handle = try? FileHandle(forWritingTo: temporary) else {
            TemporaryOutput.discard(temporary)
            throw LogitsBaseError.writeFailed(file: url.path, reason: "cannot create \(temporary.path)")
        }
        self.handle = handle
        handle.seekToEndOfFile()
    }

    deinit {
        if !finished {
            try? handle.close()
            TemporaryOutput.discard(temporary)
        }
    }

    public func append(row: UnsafeBufferPointer<Float>) throws {
        precondition(row.count == vocab)
        buffer.append(UnsafeBufferPointer(start: UnsafeRawPointer(row.baseAddress!).assumingMemoryBound(to: UInt8.self),
                                          count: vocab * 4))
        rowsWritten += 1
        if buffer.count >= 8 << 20 { try flush() }
    }

    private func flush() throws {
        do { try handle.write(contentsOf: buffer) } catch {
            throw LogitsBaseError.writeFailed(file: url.path, reason: "\(error.localizedDescription)")
        }
        buffer.removeAll(keepingCapacity: true)
    }

    /// Writes the header (with the run's mean −log p), syncs and renames into place.
    public func finish(meanNLL: Double) throws {
        try flush()
        var header = Data(LogitsBaseFormat.magic)
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { header.append(contentsOf: $0) } }
        put(LogitsBaseFormat.version)
        put(LogitsBaseFormat.elementTypeF32)
        put(UInt32(vocab))
        put(UInt32(ctx))
        put(UInt64(tokens.count))
        put(UInt64(rowsWritten))
        put(LogitsBaseFormat.hash(tokens: tokens, ctx: ctx))
        put(meanNLL.bitPattern)
        put(UInt64(0))
        do {
            try handle.seek(toOffset: 0)
            try handle.write(contentsOf: header)
            try handle.synchronize()
            try handle.close()
        } catch {
            throw LogitsBaseError.writeFailed(file: url.path, reason: "\(error.localizedDescription)")
        }
        guard rename(temporary.path, url.path) == 0 else {
            throw LogitsBaseError.writeFailed(file: url.path, reason: String(cString: strerror(errno)))
        }
        finished = true
        TemporaryOutput.end(temporary)
    }
}
