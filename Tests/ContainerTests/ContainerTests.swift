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
            let reader = try ContainerReader(path: url.path, verifyRawChecksums: true)
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
}
