import XCTest
import TestSupport
@testable import DSV2Container

/// The container on synthetic tensors: round trips, alignment, corruption and truncation.
final class ContainerTests: XCTestCase {
    /// One tensor of every type, a 1-D one, an empty one and one large enough (> 8 MiB) to be
    /// cut into several zstd chunks and page-aligned when raw.
    func makeSource() -> MemorySource {
        let source = MemorySource()
        source.configJSON = Data(#"{"model_type": "deepseek_v2"}"#.utf8)
        source.tokenizerFiles = ["tokenizer.json": Data(#"{"model": {}}"#.utf8)]
        source.addFloats("a.f32", type: .f32, shape: [33, 70], seed: 1)
        source.addFloats("b.f16", type: .f16, shape: [64, 96], seed: 2)
        source.addFloats("c.bf16", type: .bf16, shape: [2304, 2048], seed: 3)   // 9 MiB: two chunks
        source.addFloats("d.q8", type: .q8, shape: [40, 100], seed: 4)
        source.addFloats("e.q4", type: .q4, shape: [40, 100], seed: 5)
        source.addFloats("f.norm", type: .bf16, shape: [77], seed: 6)
        source.add("g.empty", type: .f32, shape: [0, 8], bytes: [])
        return source
    }

    func write(_ source: MemorySource, to url: URL, compression: CompressionOptions) throws -> ContainerMetadata {
        let writer = try ContainerWriter(destination: url, overwrite: true)
        try writer.addFile(name: "config.json", data: source.configJSON)
        for (name, data) in source.tokenizerFiles { try writer.addFile(name: name, data: data) }
        for name in source.tensorNames {
            try writer.add(TensorCodec.encode(try source.tensor(name), options: compression))
        }
        return try writer.finish(quantization: "test", provenance: ContainerProvenance(sourceFormat: "memory", sourceName: "test", files: []))
    }

    func testRoundTripRawAndCompressed() throws {
        let folder = TemporaryDirectory()
        let source = makeSource()
        for (label, compression) in [("raw", CompressionOptions.none), ("zstd", .zstd),
                                     ("zstd-noplanes", CompressionOptions(zstd: true, bytePlanes: false))] {
            let url = folder.file("\(label).dsv2")
            _ = try write(source, to: url, compression: compression)
            let reader = try ContainerReader(path: url.path)
            XCTAssertEqual(reader.configJSON, source.configJSON)
            XCTAssertEqual(reader.tokenizerFiles, source.tokenizerFiles)
            XCTAssertEqual(reader.tensorNames, source.tensorNames)
            XCTAssertTrue(reader.verify().isEmpty, label)
            let all = try reader.loadAll(threads: 2)
            for name in source.tensorNames {
                let loaded = try reader.tensor(name, threads: 2)
                let original = try source.tensor(name)
                XCTAssertEqual(loaded.type, original.type)
                XCTAssertEqual(loaded.shape, original.shape)
                XCTAssertEqual(bytesOf(loaded), bytesOf(original), "\(label) \(name)")
                XCTAssertEqual(bytesOf(all[name]!), bytesOf(original), "\(label) \(name) (loadAll)")
                let entry = reader.entry(name)!
                if label == "raw" {
                    XCTAssertEqual(entry.compression, .none)
                    XCTAssertTrue(loaded.owner === reader.file, "raw tensors are zero-copy views of the mapping")
                    XCTAssertEqual(entry.offset % (entry.rawSize >= 1 << 20 ? 4096 : 64), 0, name)
                    if let base = loaded.bytes.baseAddress { XCTAssertEqual(Int(bitPattern: base) % 64, 0) }
                } else if entry.rawSize > 0 {
                    XCTAssertNotEqual(entry.compression, .none)
                    XCTAssertEqual(Int(bitPattern: loaded.bytes.baseAddress!) % 64, 0)
                }
            }
            if label == "zstd" {
                let big = reader.entry("c.bf16")!
                XCTAssertEqual(big.compression, .zstdPlanes)
                XCTAssertEqual(big.chunks?.count, 2)
                // Random low bytes do not compress: that plane is stored raw; the high bytes do.
                XCTAssertEqual(big.chunks![0].segments.map(\.encoding), [.raw, .zstd])
                XCTAssertEqual(reader.entry("d.q8")!.compression, .zstd)
            }
        }
    }

    func testBytePlanesRoundTrip() {
        for elementSize in [2, 4] {
            let data = XXH64Tests.pattern(elementSize * 1001)
            var planes = [UInt8](repeating: 0, count: data.count)
            var back = [UInt8](repeating: 0, count: data.count)
            data.withUnsafeBytes { d in planes.withUnsafeMutableBytes { BytePlanes.split(d.baseAddress!, count: d.count, elementSize: elementSize, into: $0.baseAddress!) } }
            XCTAssertEqual(planes[0], data[0])
            XCTAssertEqual(planes[1001], data[1])   // plane 1 starts with byte 1 of element 0
            planes.withUnsafeBytes { p in back.withUnsafeMutableBytes { BytePlanes.merge(p.baseAddress!, count: p.count, elementSize: elementSize, into: $0.baseAddress!) } }
            XCTAssertEqual(back, data)
        }
    }

    func testFlippedByteIsReportedByNameOnVerifyAndLoad() throws {
        let folder = TemporaryDirectory()
        for compression in [CompressionOptions.none, .zstd] {
            let url = folder.file("flip-\(compression.zstd).dsv2")
            let metadata = try write(makeSource(), to: url, compression: compression)
            let target = metadata.tensors.first { $0.name == "d.q8" }!
            try flipByte(url, at: target.offset + target.storedSize / 2)
            let reader = try ContainerReader(path: url.path)
            let problems = reader.verify()
            XCTAssertEqual(problems.count, 1)
            XCTAssertEqual(problems.first?.tensor, "d.q8")
            XCTAssertTrue("\(problems[0])".contains(url.path))
            let message = describe { _ = try reader.tensor("d.q8") }
            XCTAssertNotNil(message)
            XCTAssertTrue(message!.contains("d.q8") && message!.contains(url.path), message!)
            XCTAssertThrowsError(try reader.loadAll()) { XCTAssertEqual(($0 as? ContainerError)?.tensor, "d.q8") }
            XCTAssertNoThrow(try reader.tensor("a.f32"))
        }
    }

    func testFlippedMetadataOrHeaderByteIsACleanError() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("m.dsv2")
        _ = try write(makeSource(), to: url, compression: .zstd)
        let size = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! NSNumber).intValue
        try flipByte(url, at: size - 10)   // inside the JSON metadata
        XCTAssertThrowsError(try ContainerReader(path: url.path)) {
            guard case .corruptMetadata = $0 as? ContainerError else { return XCTFail("\($0)") }
        }
        try flipByte(url, at: size - 10)
        let tokenizer = try ContainerReader(path: url.path).metadata.files.first { $0.name == "tokenizer.json" }!
        try flipByte(url, at: tokenizer.offset + 3)
        XCTAssertThrowsError(try ContainerReader(path: url.path)) {
            XCTAssertTrue("\($0)".contains("tokenizer.json") && "\($0)".contains(url.path), "\($0)")
        }
        try flipByte(url, at: tokenizer.offset + 3)
        try flipByte(url, at: 20)          // inside the header
        XCTAssertThrowsError(try ContainerReader(path: url.path)) {
            guard case .corruptHeader = $0 as? ContainerError else { return XCTFail("\($0)") }
        }
    }

    func testTruncatedContainerIsAClearError() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("t.dsv2")
        _ = try write(makeSource(), to: url, compression: .none)
        let full = (try FileManager.default.attributesOfItem(atPath: url.path)[.size] as! NSNumber).intValue
        for size in [full - 1, full / 2, 1000, 63, 0] {
            truncateFile(url, to: size)
            let message = describe { _ = try ContainerReader(path: url.path) }
            XCTAssertNotNil(message)
            XCTAssertTrue(message!.contains(url.path), message!)
            XCTAssertTrue(message!.contains("truncated") || message!.contains("not a dsv2 container"), message!)
        }
    }

    func testUnknownFormatVersionIsAClearError() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("v.dsv2")
        _ = try write(makeSource(), to: url, compression: .none)
        let handle = try FileHandle(forUpdating: url)
        try handle.seek(toOffset: 8)
        handle.write(Data([99, 0, 0, 0]))
        try handle.close()
        XCTAssertThrowsError(try ContainerReader(path: url.path)) {
            XCTAssertEqual($0 as? ContainerError, .unsupportedVersion(path: url.path, found: 99, supported: ContainerFormat.version))
            XCTAssertTrue("\($0)".contains("version 99"))
        }
    }

    func testUnfinishedWriterLeavesNothing() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("u.dsv2")
        do {
            let writer = try ContainerWriter(destination: url, overwrite: false)
            try writer.add(TensorCodec.encode(try makeSource().tensor("a.f32"), options: .none))
            XCTAssertTrue(FileManager.default.fileExists(atPath: writer.temporaryPath))
            // Partial temp files carry no magic, so nothing mistakes them for a container.
            XCTAssertThrowsError(try ContainerReader(path: writer.temporaryPath)) {
                XCTAssertEqual($0 as? ContainerError, .notAContainer(path: writer.temporaryPath))
            }
            writer.abort()
            XCTAssertFalse(FileManager.default.fileExists(atPath: writer.temporaryPath))
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.url.path), [])
    }

    func testWriterRefusesToOverwriteAndReportsUnwritableFolders() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("exists.dsv2")
        _ = FileManager.default.createFile(atPath: url.path, contents: Data("keep".utf8))
        XCTAssertThrowsError(try ContainerWriter(destination: url, overwrite: false)) {
            XCTAssertEqual($0 as? ContainerError, .exists(path: url.path))
        }
        XCTAssertEqual(try Data(contentsOf: url), Data("keep".utf8))
        // A "folder" that is a regular file, and one that does not exist (root ignores chmod).
        for bad in [url.appendingPathComponent("out.dsv2"), folder.file("missing/out.dsv2")] {
            XCTAssertThrowsError(try ContainerWriter(destination: bad, overwrite: true)) {
                guard case let .cannotWrite(path, _) = $0 as? ContainerError else { return XCTFail("\($0)") }
                XCTAssertEqual(path, bad.path)
            }
        }
    }

    // MARK: Hostile tables (issue 15)

    /// Rewrites the metadata of `url` through `change`, with a valid header (checksums, sizes).
    func rewriteMetadata(_ url: URL, _ change: (inout ContainerMetadata) -> Void) throws {
        let reader = try ContainerReader(path: url.path)
        var metadata = reader.metadata, header = reader.header
        change(&metadata)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let json = try encoder.encode(metadata)
        header.metadataSize = UInt64(json.count)
        header.metadataChecksum = json.withUnsafeBytes { XXH64.hash($0) }
        header.fileSize = header.metadataOffset + UInt64(json.count)
        let handle = try FileHandle(forUpdating: url)
        try handle.truncate(atOffset: header.metadataOffset)
        try handle.seek(toOffset: header.metadataOffset)
        handle.write(json)
        try handle.seek(toOffset: 0)
        handle.write(Data(header.encoded()))
        try handle.close()
    }

    /// Overwrites header bytes at `offset` and fixes the header's own checksum.
    func patchHeader(_ url: URL, at offset: Int, _ bytes: [UInt8]) throws {
        var header = [UInt8](try Data(contentsOf: url).prefix(ContainerFormat.headerSize))
        header.replaceSubrange(offset..<offset + bytes.count, with: bytes)
        withUnsafeBytes(of: XXH64.hash(bytes: header[0..<56]).littleEndian) { header.replaceSubrange(56..<64, with: $0) }
        let handle = try FileHandle(forUpdating: url)
        handle.write(Data(header))
        try handle.close()
    }

    func testUnknownHeaderSizeReservedBytesAndMetadataVersionAreRejected() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("h.dsv2")
        for (offset, bytes, words) in [(12, [128, 0, 0, 0] as [UInt8], ["header size 128"]), (48, [1], ["reserved"])] {
            _ = try write(makeSource(), to: url, compression: .none)
            try patchHeader(url, at: offset, bytes)
            XCTAssertThrowsError(try ContainerReader(path: url.path)) { error in
                guard case .corruptHeader = error as? ContainerError else { return XCTFail("\(error)") }
                for word in words + [url.path] { XCTAssertTrue("\(error)".contains(word), "\(error)") }
            }
        }
        _ = try write(makeSource(), to: url, compression: .none)
        try rewriteMetadata(url) { $0.formatVersion = 2 }
        XCTAssertThrowsError(try ContainerReader(path: url.path)) { error in
            XCTAssertTrue("\(error)".contains("formatVersion 2") && "\(error)".contains(url.path), "\(error)")
        }
    }

    /// A tensor pointing into the metadata, into the header, or into another tensor: both
    /// checksums could be valid, so the sharing itself is the error, naming both items.
    func testOverlappingRegionsAreRejected() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("o.dsv2")
        let cases: [(String, (inout ContainerMetadata, ContainerHeader) -> Void, [String])] = [
            ("metadata", { m, h in m.tensors[5].offset = Int(h.metadataOffset) }, ["f.norm", "the metadata"]),
            ("tensor", { m, _ in m.tensors[5].offset = m.tensors[3].offset }, ["f.norm", "d.q8"]),
            ("file", { m, _ in m.tensors[5].offset = m.files[0].offset }, ["f.norm", "embedded file config.json"]),
        ]
        for (label, change, words) in cases {
            _ = try write(makeSource(), to: url, compression: .none)
            let header = try ContainerReader(path: url.path).header
            XCTAssertEqual(try ContainerReader(path: url.path).metadata.tensors[5].name, "f.norm")
            try rewriteMetadata(url) { change(&$0, header) }
            XCTAssertThrowsError(try ContainerReader(path: url.path), label) { error in
                for word in words + ["overlaps", url.path] { XCTAssertTrue("\(error)".contains(word), "\(label): \(error)") }
            }
        }
    }

    /// Shapes and chunk tables whose sizes would overflow are errors naming the tensor, not traps.
    func testHostileSizesAreErrors() throws {
        let folder = TemporaryDirectory()
        let url = folder.file("s.dsv2")
        let cases: [(String, (inout ContainerMetadata) -> Void)] = [
            ("shape", { $0.tensors[0].shape = [1 << 40, 1 << 40] }),
            ("shape product", { $0.tensors[0].shape = [1 << 31, 1 << 31, 1 << 31] }),
            ("chunk", { $0.tensors[2].chunks![0].rawSize = Int.max }),
            ("segment", { $0.tensors[2].chunks![0].segments[0].size = Int.max }),
        ]
        for (label, change) in cases {
            _ = try write(makeSource(), to: url, compression: .zstd)
            try rewriteMetadata(url, change)
            XCTAssertThrowsError(try ContainerReader(path: url.path), label) { error in
                XCTAssertNotNil((error as? ContainerError)?.tensor, "\(label): \(error)")
                XCTAssertTrue("\(error)".contains(url.path), "\(label): \(error)")
            }
        }
    }

    /// A NaN stored with a valid checksum (a foreign writer, or damage before conversion): raw
    /// tensors are refused at load by default and by `verify`; `verifyRawTensors: false` skips
    /// the check; compressed tensors are always checked.
    func testNonFiniteWeightWithAValidChecksumIsRefused() throws {
        let folder = TemporaryDirectory()
        let source = makeSource()
        var bytes = [UInt8](repeating: 0, count: 16 * 8 * 2)
        bytes[(3 * 8 + 5) * 2 + 1] = 0x7F   // bf16 0x7F80 (+inf) at row 3, column 5
        bytes[(3 * 8 + 5) * 2] = 0x80
        source.add("h.inf", type: .bf16, shape: [16, 8], bytes: bytes)
        for compression in [CompressionOptions.none, .zstd] {
            let url = folder.file("nan-\(compression.zstd).dsv2")
            _ = try write(source, to: url, compression: compression)
            let expected = ContainerError.nonFinite(path: url.path, tensor: "h.inf", row: 3, column: 5)
            let reader = try ContainerReader(path: url.path)
            XCTAssertThrowsError(try reader.tensor("h.inf")) { XCTAssertEqual($0 as? ContainerError, expected) }
            XCTAssertEqual(reader.verify(), [expected])
            XCTAssertTrue("\(expected)".contains("h.inf") && "\(expected)".contains("row 3, column 5"))
            let unchecked = try ContainerReader(path: url.path, verifyRawTensors: false)
            if compression.zstd {
                XCTAssertThrowsError(try unchecked.tensor("h.inf"))
            } else {
                XCTAssertNoThrow(try unchecked.tensor("h.inf"))
            }
            XCTAssertEqual(unchecked.verify(), [expected], "verify always checks")
        }
    }
}
