import XCTest
import TestSupport
import DSV2Container
@testable import DSV2Converter
import DSV2Core
import DSV2Formats

final class SynthCheckpointTests: XCTestCase {
    /// The presets are the real configurations (docs/NUMERICS.md, "Real configurations"), with the real parameter counts.
    func testPresetsAreTheRealConfigurations() throws {
        let lite = try SynthModelSpec.make(preset: "v2-lite").config
        XCTAssertEqual([lite.numHiddenLayers, lite.hiddenSize, lite.numAttentionHeads, lite.routedExpertCount,
                        lite.moeIntermediateSize, lite.intermediateSize, lite.expertsPerToken, lite.kvLoraRank,
                        lite.qkNopeHeadDim, lite.qkRopeHeadDim, lite.vHeadDim, lite.vocabSize, lite.maxPositionEmbeddings],
                       [27, 2048, 16, 64, 1408, 10944, 6, 512, 128, 64, 128, 102400, 163840])
        XCTAssertNil(lite.qLoraRank)
        XCTAssertEqual(lite.topkMethod, .greedy)
        XCTAssertEqual(lite.routedScalingFactor, 1)
        XCTAssertEqual(lite.parameterCount, 15_706_484_224)   // "15.7B" on the model card

        let v2 = try SynthModelSpec.make(preset: "v2").config
        XCTAssertEqual([v2.numHiddenLayers, v2.hiddenSize, v2.numAttentionHeads, v2.routedExpertCount,
                        v2.moeIntermediateSize, v2.intermediateSize, v2.qLoraRank ?? 0, v2.nGroup ?? 0, v2.topkGroup ?? 0],
                       [60, 5120, 128, 160, 1536, 12288, 1536, 8, 3])
        XCTAssertEqual(v2.topkMethod, .groupLimitedGreedy)
        XCTAssertEqual(v2.routedScalingFactor, 16)
        XCTAssertEqual(v2.parameterCount, 235_741_434_880)    // "236B"
        for config in [lite, v2] {
            let yarn = try XCTUnwrap(config.ropeScaling)
            XCTAssertEqual([yarn.factor, Double(yarn.originalMaxPositionEmbeddings), yarn.mscale, yarn.mscaleAllDim, yarn.betaFast, yarn.betaSlow],
                           [40, 4096, 0.707, 0.707, 32, 1])
            XCTAssertEqual(config.rmsNormEps, 1e-6)
            XCTAssertEqual(config.softmaxScale, 0.1147214, accuracy: 1e-6)
        }
    }

    func testLayerAndExpertOverridesKeepPerLayerShapes() throws {
        let cut = try SynthModelSpec.make(preset: "v2", layers: 2, experts: 16).config
        XCTAssertEqual(cut.numHiddenLayers, 2)
        XCTAssertEqual(cut.routedExpertCount, 16)
        XCTAssertEqual(cut.hiddenSize, 5120)
        let names = cut.expectedTensorShapes()
        XCTAssertTrue(names.contains { $0.name == "model.layers.1.mlp.experts.15.down_proj.weight" && $0.shape == [5120, 1536] })
        XCTAssertFalse(names.contains { $0.name.hasPrefix("model.layers.2.") })
        // 12 experts cannot form V2's 8 groups: the error names the field.
        XCTAssertThrowsError(try SynthModelSpec.make(preset: "v2", experts: 12)) { error in
            XCTAssertEqual((error as? ModelConfigError)?.field, "n_group")
        }
        XCTAssertThrowsError(try SynthModelSpec.make(preset: "v2-lite", layers: 0))
        XCTAssertThrowsError(try SynthModelSpec.make(preset: "/no/such/config.json"))
    }

    /// Shards follow `save_pretrained`: model order, a new shard before overflowing, DeepSeek's names.
    func testShardPlanAtRealScale() throws {
        let source = try SyntheticWeightSource(spec: SynthModelSpec.make(preset: "v2-lite"), seed: 0)
        let shards = SynthHFWriter.planShards(source, shardBytes: SynthHFWriter.defaultShardBytes)
        XCTAssertEqual(shards.count, 7)   // 31.4 GB of bf16 in ≤ 5 GB shards
        XCTAssertEqual(shards[0].fileName, "model-00001-of-000007.safetensors")
        XCTAssertEqual(shards.flatMap { $0.tensors.map(\.name) }, source.tensorNames)
        for shard in shards { XCTAssertLessThanOrEqual(shard.dataBytes, SynthHFWriter.defaultShardBytes) }
        XCTAssertEqual(shards.reduce(0) { $0 + $1.dataBytes }, source.totalBytes)
    }

    /// Same seed → same bytes whatever the thread count; a different seed changes the weights;
    /// the sharded folder loads and validates against its config.
    func testHuggingFaceFolderIsReproducibleAndValid() throws {
        let folder = TemporaryDirectory()
        let spec = try SynthTestConfigs.spec(SynthTestConfigs.v2Style, in: folder)
        let one = folder.file("one"), two = folder.file("two"), other = folder.file("other")
        try Synthesizer.writeHuggingFace(spec, seed: 5, to: one, shardBytes: 200_000, threads: 1)
        try Synthesizer.writeHuggingFace(spec, seed: 5, to: two, shardBytes: 200_000, threads: 2)
        try Synthesizer.writeHuggingFace(spec, seed: 6, to: other, shardBytes: 200_000, threads: 2)
        let a = try SynthTestConfigs.contents(one), b = try SynthTestConfigs.contents(two)
        XCTAssertEqual(a, b)
        XCTAssertGreaterThan(a.keys.filter { $0.hasSuffix(".safetensors") }.count, 3)
        XCTAssertNotNil(a[SafetensorsCheckpoint.indexFileName])
        let c = try SynthTestConfigs.contents(other)
        XCTAssertNotEqual(a.filter { $0.key.hasSuffix(".safetensors") }, c.filter { $0.key.hasSuffix(".safetensors") })

        let checkpoint = try SafetensorsCheckpoint(url: one)
        try checkpoint.validate(against: spec.config)
        XCTAssertEqual(Set(checkpoint.tensorNames), Set(spec.config.expectedTensorShapes().map(\.name)))
        XCTAssertEqual(try checkpoint.info(CheckpointNames.embedTokens).dtype, .bf16)
        XCTAssertEqual(try checkpoint.floats("model.layers.3.input_layernorm.weight"), [Float](repeating: 1, count: 128))
        _ = try HFCheckpointSource(folder: one)   // the converter accepts it too
        // Writing over an existing output needs overwrite.
        XCTAssertThrowsError(try Synthesizer.writeHuggingFace(spec, seed: 5, to: one)) { error in
            XCTAssertEqual(error as? SynthError, .outputExists(path: one.path))
        }
    }

    /// A container written directly holds exactly what the converter makes of the HF folder.
    func testContainerEqualsConvertedFolder() throws {
        let folder = TemporaryDirectory()
        let spec = try SynthTestConfigs.spec(SynthTestConfigs.liteStyle, in: folder, layers: 3)
        let hf = folder.file("hf"), direct = folder.file("direct.dsv2"), converted = folder.file("converted.dsv2")
        try Synthesizer.writeHuggingFace(spec, seed: 9, to: hf)
        try Synthesizer.writeContainer(spec, seed: 9, to: direct, policy: .q4, threads: 2)
        let (source, provenance) = try Converter.openSource(hf)
        _ = try Converter.convert(source: source, provenance: provenance, to: converted, options: ConversionOptions(policy: .q4))
        let x = try ContainerReader(path: direct.path), y = try ContainerReader(path: converted.path)
        XCTAssertEqual(x.tensorNames, y.tensorNames)
        XCTAssertEqual(x.configJSON, spec.configJSON)
        XCTAssertEqual(x.tokenizerFiles.count, 0)
        for name in x.tensorNames {
            let p = try x.tensor(name), q = try y.tensor(name)
            XCTAssertEqual(p.type, q.type, name)
            XCTAssertTrue(p.bytes.elementsEqual(q.bytes), name)
        }
        XCTAssertEqual(x.entry("model.layers.1.mlp.experts.0.up_proj.weight")?.type, .q4)
        XCTAssertEqual(x.entry("model.layers.1.mlp.gate.weight")?.type, .f32)
    }
}
