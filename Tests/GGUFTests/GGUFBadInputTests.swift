import DSV2Core
import DSV2GGUF
import Foundation
import TestSupport
import XCTest

/// Hostile or damaged GGUF input: a clear error naming the key or tensor, never a crash, a hang,
/// a SIGBUS or an allocation sized by an unchecked count.
final class GGUFBadInputTests: XCTestCase {
    let fixture = "lite-greedy-q8_0.gguf"

    var fixtureBytes: Data { get throws { try Data(contentsOf: Fixtures.url("gguf/\(fixture)")) } }

    func error(_ data: Data) -> String? {
        describe { try GGUFFile.fuzzEntry(data) }
    }

    func openError(_ url: URL) -> String? {
        describe { _ = try GGUFSource(path: url.path) }
    }

    func patched(_ data: Data, at offset: Int, _ bytes: [UInt8]) -> Data {
        var copy = data
        copy.replaceSubrange(offset..<(offset + bytes.count), with: bytes)
        return copy
    }

    func le64(_ v: UInt64) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

    func testWrongMagicAndVersion() throws {
        let data = try fixtureBytes
        XCTAssertTrue(error(patched(data, at: 0, Array("GGUG".utf8)))?.contains("not a GGUF file") == true)
        let v4 = error(patched(data, at: 4, [4, 0, 0, 0]))
        XCTAssertTrue(v4?.contains("GGUF version 4 is not supported") == true, v4 ?? "accepted")
    }

    func testCountsBeyondTheFile() throws {
        let data = try fixtureBytes
        let tensors = error(patched(data, at: 8, le64(1 << 40)))
        XCTAssertTrue(tensors?.contains("tensor count") == true, tensors ?? "accepted")
        let keys = error(patched(data, at: 16, le64(UInt64.max)))
        XCTAssertTrue(keys?.contains("metadata count") == true, keys ?? "accepted")
        // The first key's string length (right after the header).
        let length = error(patched(data, at: 24, le64(1 << 50)))
        XCTAssertTrue(length?.contains("string length") == true, length ?? "accepted")
    }

    func testArrayLengthBeyondTheFile() throws {
        let url = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            metadata.append(("test.array", .array(.uint32, [.uint(1, .uint32)])))
        }
        var data = try Data(contentsOf: url)
        // Find the array's length field: key "test.array", type 9, element type 4, then u64 count.
        let key = Data("test.array".utf8)
        let at = try XCTUnwrap(data.range(of: key)).upperBound + 8
        data.replaceSubrange(at..<(at + 8), with: le64(1 << 60))
        let message = error(data)
        XCTAssertTrue(message?.contains("test.array") == true && message?.contains("runs past the end") == true, message ?? "accepted")
    }

    func testTensorOffsetsOutOfRangeOrMisaligned() throws {
        let file = try GGUFFile(path: Fixtures.url("gguf/\(fixture)").path)
        let data = try fixtureBytes
        let info = file.tensors[3]
        // The offset field is the 8 bytes just before the data section's table entry ends: find
        // it as name + dims + type within the table.
        let nameRange = try XCTUnwrap(data.range(of: Data(info.name.utf8)))
        let offsetAt = nameRange.upperBound + 4 + 8 * info.dimensions.count + 4
        XCTAssertEqual(data[offsetAt..<(offsetAt + 8)].withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }, UInt64(info.offset))
        let beyond = error(patched(data, at: offsetAt, le64(UInt64(data.count))))
        XCTAssertTrue(beyond?.contains(info.name) == true && beyond?.contains("beyond the end") == true, beyond ?? "accepted")
        let misaligned = error(patched(data, at: offsetAt, le64(UInt64(info.offset + 4))))
        XCTAssertTrue(misaligned?.contains(info.name) == true && misaligned?.contains("alignment") == true, misaligned ?? "accepted")
        let huge = error(patched(data, at: offsetAt, le64(UInt64.max - 31)))
        XCTAssertTrue(huge?.contains(info.name) == true, huge ?? "accepted")
    }

    func testUnknownAndUnreadableTypes() throws {
        let unknown = try GGUFTestFiles.rewrite(fixture) { _, plans in
            plans.append(GGUFTensorPlan(name: "extra.weight", dimensions: [32], type: .f32) { [UInt8](repeating: 0, count: 128) })
        }
        var data = try Data(contentsOf: unknown)
        let at = try XCTUnwrap(data.range(of: Data("extra.weight".utf8))).upperBound + 4 + 8
        data.replaceSubrange(at..<(at + 4), with: [99, 0, 0, 0])
        let message = error(data)
        XCTAssertTrue(message?.contains("extra.weight") == true && message?.contains("unknown ggml tensor type 99") == true, message ?? "accepted")

        let iq = try GGUFTestFiles.rewrite(fixture) { _, plans in
            let i = plans.firstIndex { $0.name == "blk.0.attn_q.weight" }!
            let dims = plans[i].dimensions
            plans[i] = GGUFTensorPlan(name: plans[i].name, dimensions: dims, type: .iq4_nl) {
                [UInt8](repeating: 0, count: dims.reduce(1, *) / 32 * 18)
            }
        }
        let iqMessage = openError(iq)
        XCTAssertTrue(iqMessage?.contains("blk.0.attn_q.weight") == true && iqMessage?.contains("IQ4_NL") == true, iqMessage ?? "accepted")
    }

    func testShapesThatDisagreeWithTheMetadata() throws {
        let wider = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            let i = metadata.firstIndex { $0.0 == "deepseek2.expert_feed_forward_length" }!
            metadata[i].1 = .uint(64, .uint32)
        }
        let message = openError(wider)
        XCTAssertTrue(message?.contains("ffn_") == true && message?.contains("metadata implies") == true, message ?? "accepted")

        let missing = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            metadata.removeAll { $0.0 == "deepseek2.attention.kv_lora_rank" }
        }
        XCTAssertTrue(openError(missing)?.contains("deepseek2.attention.kv_lora_rank: is missing") == true, openError(missing) ?? "accepted")

        let droppedTensor = try GGUFTestFiles.rewrite(fixture) { _, plans in
            plans.removeAll { $0.name == "blk.2.attn_kv_a_mqa.weight" }
        }
        XCTAssertTrue(openError(droppedTensor)?.contains("blk.2.attn_kv_a_mqa.weight: is missing") == true, openError(droppedTensor) ?? "accepted")

        let v3 = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            let i = metadata.firstIndex { $0.0 == "deepseek2.expert_gating_func" }!
            metadata[i].1 = .uint(2, .uint32)
        }
        XCTAssertTrue(openError(v3)?.contains("expert_gating_func") == true, openError(v3) ?? "accepted")

        let hugeDepth = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            let i = metadata.firstIndex { $0.0 == "deepseek2.block_count" }!
            metadata[i].1 = .uint(1 << 40, .uint64)
        }
        XCTAssertTrue(openError(hugeDepth)?.contains("deepseek2.block_count") == true, openError(hugeDepth) ?? "accepted")

        let llama = try GGUFTestFiles.rewrite(fixture) { metadata, _ in
            metadata[0].1 = .string("llama")
        }
        XCTAssertTrue(openError(llama)?.contains("general.architecture") == true, openError(llama) ?? "accepted")
    }

    /// Every prefix of the file (every byte of the header and table, then a stride through the
    /// data): an error, never a crash; a prefix that cuts tensor data names a tensor.
    func testTruncationAnywhere() throws {
        let data = try fixtureBytes
        let file = try GGUFFile(path: Fixtures.url("gguf/\(fixture)").path)
        var lengths = Array(0..<file.dataOffset)
        lengths += Array(stride(from: file.dataOffset, to: data.count, by: 997))
        for length in lengths {
            let message = error(data.prefix(length))
            XCTAssertNotNil(message, "a \(length)-byte prefix was accepted")
            if length > file.dataOffset, let message { XCTAssertTrue(message.contains("beyond the end"), message) }
        }
        XCTAssertNil(error(data))
    }
}
