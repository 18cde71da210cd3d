import ArgumentParser
import CBLAS
import DSV2
import Foundation

/// `dsv2 bench reference`: prefill speed of the fp32 reference on one DeepSeek-V2-Lite MoE
/// decoder layer (real shapes, random seeded weights generated in memory).
struct BenchReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reference",
        abstract: "Prefill tokens/s of the fp32 reference on one DeepSeek-V2-Lite MoE layer (random weights).",
        discussion: """
            The layer has V2-Lite's shapes: hidden 2048, 16 heads, kv_lora_rank 512, qk_nope 128, qk_rope 64, \
            v_head 128, plain q_proj, 64 routed experts of 1408 + 2 shared, top-6 greedy, YaRN factor 40. \
            Embedding and lm_head use a 256-token vocabulary so the layer dominates. Weights need ~2.4 GB.
            """)

    @Option(name: .long, help: "Comma-separated prompt lengths to time.")
    var tokens: String = "64,256"

    @Option(name: .long, help: "MLA forms to time: expanded, absorbed, or both.")
    var mla: String = "both"

    @Option(name: .long, help: "Timed runs per case (the best is reported).")
    var repetitions: Int = 3

    @Option(name: .long, parsing: .unconditional, help: "Seed of the random weights and tokens (negative: a random one, reported).")
    var seed: Int64 = 1

    @OptionGroup var threads: ThreadOptions

    @Flag(name: .long, help: "Print JSON.")
    var json = false

    static func liteLayerConfig() -> ModelConfig {
        ModelConfig(vocabSize: 256, hiddenSize: 2048, intermediateSize: 10944, moeIntermediateSize: 1408,
                    numHiddenLayers: 1, numAttentionHeads: 16, qLoraRank: nil, kvLoraRank: 512,
                    qkNopeHeadDim: 128, qkRopeHeadDim: 64, vHeadDim: 128, ropeTheta: 10000,
                    ropeScaling: .init(factor: 40, originalMaxPositionEmbeddings: 4096, betaFast: 32, betaSlow: 1,
                                       mscale: 0.707, mscaleAllDim: 0.707),
                    maxPositionEmbeddings: 163840, nSharedExperts: 2, nRoutedExperts: 64, numExpertsPerTok: 6,
                    routedScalingFactor: 1, topkMethod: .greedy, nGroup: 1, topkGroup: 1, moeLayerFreq: 1,
                    firstKDenseReplace: 0, normTopkProb: false, rmsNormEps: 1e-6)
    }

    func run() throws {
        let lengths = try tokens.split(separator: ",").map { part -> Int in
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("--tokens: \"\(part)\" is not a positive length")
            }
            return n
        }
        let forms: [AttentionForm]
        switch mla {
        case "both": forms = [.expanded, .absorbed]
        default:
            guard let form = AttentionForm(rawValue: mla) else { throw ValidationError("--mla must be expanded, absorbed or both") }
            forms = [form]
        }
        guard repetitions >= 1 else { throw ValidationError("--repetitions must be at least 1") }
        let seed = self.seed >= 0 ? UInt64(self.seed) : UInt64.random(in: 0...UInt64(UInt32.max))
        if let count = threads.threads { openblas_set_num_threads(Int32(count)) }

        let config = Self.liteLayerConfig()
        try config.validate()
        let setupStart = Date()
        let weights = ReferenceWeights.random(config: config, seed: seed)
        let setupSeconds = Date().timeIntervalSince(setupStart)
        var results: [[String: Any]] = []
        for form in forms {
            let model = ReferenceModel(config: config, weights: weights, attentionForm: form)
            for length in lengths {
                let ids = (0..<length).map { Int32(truncatingIfNeeded: (UInt64($0) &* 2654435761 &+ seed) % UInt64(config.vocabSize)) }
                let tracer = RecordingTracer(patterns: ["router.0.indices", "hidden.1"])
                model.resetCache()
                _ = try model.forward(tokens: ids, logits: .last, tracer: tracer)  // warm-up, and checks below
                let hidden = tracer["hidden.1"]?.floats ?? []
                let finite = hidden.allSatisfy(\.isFinite)
                let expertsUsed = Set(tracer["router.0.indices"]?.int32s ?? []).count
                var best = Double.infinity, bestCPU = Double.infinity
                for _ in 0..<repetitions {
                    model.resetCache()
                    let start = DispatchTime.now().uptimeNanoseconds, startCPU = BenchClock.processCPU()
                    _ = try model.forward(tokens: ids, logits: .last, tracer: nil)
                    best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
                    bestCPU = min(bestCPU, BenchClock.processCPU() - startCPU)
                }
                // Wall time is what users see; CPU time (all threads) shows the work when other
                // jobs share the cores.
                results.append(["tokens": length, "mla": form.rawValue, "seconds": best, "cpu_seconds": bestCPU,
                                "tokens_per_second": Double(length) / best,
                                "experts_used": expertsUsed, "activations_finite": finite])
            }
        }
        let report: [String: Any] = [
            "benchmark": "reference-layer",
            "layer": "DeepSeek-V2-Lite MoE decoder layer (fp32, random weights, seed \(seed))",
            "blas_threads": BLAS.threadCount,
            "blas_core": BLAS.coreName,
            "weights_setup_seconds": setupSeconds,
            "repetitions": repetitions,
            "results": results,
        ]
        if json {
            let data = try JSONSerialization.data(withJSONObject: report, options: [.prettyPrinted, .sortedKeys])
            print(String(decoding: data, as: UTF8.self))
        } else {
            print("reference, one V2-Lite MoE layer, fp32, OpenBLAS \(BLAS.coreName) × \(BLAS.threadCount) threads (best of \(repetitions)):")
            for r in results {
                print(String(format: "  %-8@ %4d tokens: %8.1f tokens/s (%.3f s wall, %.3f s CPU), %d experts used",
                             r["mla"] as! String as NSString, r["tokens"] as! Int, r["tokens_per_second"] as! Double,
                             r["seconds"] as! Double, r["cpu_seconds"] as! Double, r["experts_used"] as! Int))
            }
        }
    }
}
