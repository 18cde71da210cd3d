import XCTest
import TestSupport
import DSV2Container
@testable import DSV2Converter
import DSV2Formats

/// Every fixture × every preset × raw and compressed: the loaded bytes equal quantizing the
/// source in memory with the same policy (`QuantizingSource`), and lossless presets give back
/// the source bytes exactly. Exact equality is the contract: both paths run the same
/// `TensorConversion` and the container stores bytes verbatim.
final class ConversionRoundTripTests: XCTestCase {
    func testEveryFixtureEveryPresetRawAndCompressed() throws {
        let folder = TemporaryDirectory()
        for fixture in Fixtures.modelCases {
            let (source, provenance) = try Converter.openSource(Fixtures.url(fixture))
            let hf = source as! HFCheckpointSource
            for preset in QuantizationPolicy.presetNames {
                let policy = QuantizationPolicy.preset(preset)!
                let expected = QuantizingSource(hf, policy: policy)
                var expectedBytes: [String: [UInt8]] = [:]
                for name in hf.tensorNames { expectedBytes[name] = bytesOf(try expected.tensor(name)) }
                for compression in [CompressionOptions.none, .zstd] {
                    let url = folder.file("\(fixture)-\(preset)-\(compression.zstd).dsv2")
                    let options = ConversionOptions(policy: policy, compression: compression, threads: 2)
                    let summary = try Converter.convert(source: hf, provenance: provenance, to: url, options: options)
                    XCTAssertEqual(summary.metadata.quantization, preset)
                    let reader = try ContainerReader(path: url.path)
                    XCTAssertEqual(reader.configJSON, hf.configJSON)
                    XCTAssertEqual(reader.tokenizerFiles, hf.tokenizerFiles)
                    XCTAssertEqual(reader.tensorNames, hf.tensorNames)
                    let loaded = try reader.loadAll(threads: 2)
                    for name in hf.tensorNames {
                        let tensor = loaded[name]!
                        let info = hf.tensorInfo(name)!
                        XCTAssertEqual(tensor.type, policy.type(for: name, shape: info.shape), "\(fixture) \(preset) \(name)")
                        XCTAssertEqual(tensor.shape, info.shape)
                        XCTAssertTrue(bytesOf(tensor) == expectedBytes[name]!, "\(fixture) \(preset) \(compression.zstd) \(name)")
                        if info.type.rawValue == preset {
                            XCTAssertTrue(bytesOf(tensor) == bytesOf(try hf.tensor(name)), "lossless \(fixture) \(preset) \(name)")
                        }
                    }
                    try FileManager.default.removeItem(at: url)
                }
            }
        }
    }

    func testPresetsFollowTheDocumentedPolicy() {
        let h = 2048
        func type(_ preset: QuantizationPolicy, _ name: String, _ shape: [Int]) -> WeightType { preset.type(for: name, shape: shape) }
        let expert = "model.layers.3.mlp.experts.17.up_proj.weight", shared = "model.layers.3.mlp.shared_experts.up_proj.weight"
        let attention = "model.layers.3.self_attn.kv_b_proj.weight", dense = "model.layers.0.mlp.down_proj.weight"
        let router = "model.layers.3.mlp.gate.weight", norm = "model.layers.3.input_layernorm.weight"
        for preset in [QuantizationPolicy.q8, .q4, .q4Mixed] {
            XCTAssertEqual(type(preset, router, [64, h]), .f32)
            XCTAssertEqual(type(preset, norm, [h]), .f32)
            XCTAssertEqual(type(preset, "model.embed_tokens.weight", [102400, h]), .q8)
            XCTAssertEqual(type(preset, "lm_head.weight", [102400, h]), .q8)
        }
        XCTAssertEqual([expert, shared, attention, dense].map { type(.q8, $0, [1408, h]) }, [.q8, .q8, .q8, .q8])
        XCTAssertEqual([expert, shared, attention, dense].map { type(.q4, $0, [1408, h]) }, [.q4, .q4, .q4, .q4])
        XCTAssertEqual([expert, shared, attention, dense].map { type(.q4Mixed, $0, [1408, h]) }, [.q4, .q8, .q8, .q8])
        XCTAssertEqual([expert, router, norm].map { type(.bf16, $0, [1408, h]) }, [.bf16, .bf16, .bf16])
        // A custom policy cannot quantize a 1-D tensor.
        XCTAssertEqual(QuantizationPolicy(name: "x", defaultType: .q4).type(for: norm, shape: [h]), .f32)
        XCTAssertNil(QuantizationPolicy.preset("q3"))
    }

    func testConvertingAContainerRequantizesAndKeepsProvenance() throws {
        let folder = TemporaryDirectory()
        let (hf, provenance) = try Converter.openSource(Fixtures.url("lite-greedy"))
        let first = folder.file("bf16.dsv2")
        _ = try Converter.convert(source: hf, provenance: provenance, to: first,
                                  options: ConversionOptions(policy: .bf16, compression: .zstd))
        let (container, derived) = try Converter.openSource(first)
        XCTAssertTrue(container is ContainerReader)
        XCTAssertEqual(derived.derivedFrom, provenance.files)
        let second = folder.file("q4.dsv2")
        _ = try Converter.convert(source: container, provenance: derived, to: second,
                                  options: ConversionOptions(policy: .q4, compression: .none))
        // bf16 → bf16 is lossless, so re-quantizing the container equals quantizing the checkpoint.
        let expected = QuantizingSource(hf, policy: .q4)
        let reader = try ContainerReader(path: second.path)
        for name in hf.tensorNames {
            XCTAssertTrue(bytesOf(try reader.tensor(name)) == bytesOf(try expected.tensor(name)), name)
        }
        // unpack: same bytes, raw.
        let third = folder.file("unpacked.dsv2")
        _ = try Converter.unpack(try ContainerReader(path: first.path), to: third)
        let unpacked = try ContainerReader(path: third.path)
        XCTAssertEqual(unpacked.metadata.provenance, provenance)
        for name in hf.tensorNames {
            XCTAssertEqual(unpacked.entry(name)!.compression, .none)
            XCTAssertTrue(bytesOf(try unpacked.tensor(name)) == bytesOf(try hf.tensor(name)), name)
        }
    }
}
