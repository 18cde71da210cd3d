import Foundation
import DSV2Core
import DSV2Formats

/// A median with its spread over the repetitions.
struct BenchStatistic: Codable, Equatable {
    var median: Double
    var min: Double
    var max: Double

    init(_ values: [Double]) {
        let sorted = values.sorted()
        precondition(!sorted.isEmpty, "a statistic needs at least one value")
        let n = sorted.count
        median = n % 2 == 1 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2
        min = sorted[0]
        max = sorted[n - 1]
    }
}

/// One (threads, depth, prompt length) configuration of `dsv2 bench model`. Top-level figures
/// are medians over the repetitions; `*_spread` gives min and max. Field names are stable:
/// results are tracked over time. Prefill figures are absent without a prompt (prompt 0), the
/// attention shares for an engine that does not measure them (the reference).
struct BenchModelResult: Codable {
    var threads: Int
    /// Tokens cached (untimed) before the prompt.
    var depth: Int
    var promptTokens: Int
    var genTokens: Int
    var repetitions: Int
    var prefillTokensPerSecond: Double?
    var decodeTokensPerSecond: Double
    var timeToFirstTokenSeconds: Double?
    var prefillSpread: BenchStatistic?
    var decodeSpread: BenchStatistic
    var timeToFirstTokenSpread: BenchStatistic?
    /// Fraction of the prefill / decode wall time spent in the attention core (median).
    var prefillAttentionShare: Double?
    var decodeAttentionShare: Double?
    /// Peak RSS of this configuration (the process peak when the kernel cannot reset it).
    var peakRssBytes: Int
    var kvBytesPerToken: Int
    /// What a cache of expanded keys and values in f16 would hold per token:
    /// heads × (qk_nope + qk_rope + v_head) × layers × 2 bytes.
    var kvBytesPerTokenExpandedF16: Int
    var weightBytesPerToken: Int
    /// weight_bytes_per_token × decode tokens/s.
    var achievedBytesPerSecond: Double
    var readBandwidthBytesPerSecond: Double
    /// achieved / read bandwidth: the fraction of the memory roofline decode reaches.
    var rooflineFraction: Double

    enum CodingKeys: String, CodingKey {
        case threads, depth, repetitions
        case promptTokens = "prompt_tokens", genTokens = "gen_tokens"
        case prefillTokensPerSecond = "prefill_tokens_per_second"
        case decodeTokensPerSecond = "decode_tokens_per_second"
        case timeToFirstTokenSeconds = "time_to_first_token_seconds"
        case prefillSpread = "prefill_tokens_per_second_spread"
        case decodeSpread = "decode_tokens_per_second_spread"
        case timeToFirstTokenSpread = "time_to_first_token_seconds_spread"
        case prefillAttentionShare = "prefill_attention_share"
        case decodeAttentionShare = "decode_attention_share"
        case peakRssBytes = "peak_rss_bytes"
        case kvBytesPerToken = "kv_bytes_per_token"
        case kvBytesPerTokenExpandedF16 = "kv_bytes_per_token_expanded_f16"
        case weightBytesPerToken = "weight_bytes_per_token"
        case achievedBytesPerSecond = "achieved_bytes_per_second"
        case readBandwidthBytesPerSecond = "read_bandwidth_bytes_per_second"
        case rooflineFraction = "roofline_fraction"
    }
}

/// The whole JSON document of `dsv2 bench model --json`.
struct BenchModelReport: Codable {
    var model: String
    var engine: String
    var quantization: String
    var modelFileBytes: Int
    var layers: Int
    var hiddenSize: Int
    var routedExperts: Int
    var parameters: Int
    var seed: UInt64
    /// "probe" (measured by this run), "given" (--read-bandwidth) or "mixed".
    var readBandwidthSource: String
    var peakRssResettable: Bool
    /// Process peak RSS over the whole run (model load included).
    var processPeakRssBytes: Int
    var readBandwidthBytesPerSecond: [String: Double]
    var results: [BenchModelResult]

    enum CodingKeys: String, CodingKey {
        case model, engine, quantization, layers, parameters, seed, results
        case modelFileBytes = "model_file_bytes"
        case hiddenSize = "hidden_size"
        case routedExperts = "routed_experts"
        case readBandwidthSource = "read_bandwidth_source"
        case peakRssResettable = "peak_rss_resettable"
        case processPeakRssBytes = "process_peak_rss_bytes"
        case readBandwidthBytesPerSecond = "read_bandwidth_bytes_per_second_by_threads"
    }
}

/// Bytes of weights a decode step reads, from the stored type and shape of every tensor: all
/// matrices and norms once, one row of the embedding, and per MoE layer `num_experts_per_tok`
/// of the routed experts (each token visits that many). This is the traffic the memory roofline
/// is computed from.
enum ActiveWeights {
    static func bytesPerToken(config: ModelConfig, storedBytes: (String, [Int]) -> Int) -> Int {
        var total = 0.0
        let expertFraction = config.routedExpertCount > 0
            ? Double(config.expertsPerToken) / Double(config.routedExpertCount) : 0
        for (name, shape) in config.expectedTensorShapes() {
            let bytes = Double(storedBytes(name, shape))
            switch TensorRole.classify(name: name, shape: shape) {
            case .embedding: total += bytes / Double(shape[0])
            case .routedExpert: total += bytes * expertFraction
            default: total += bytes
            }
        }
        return Int(total.rounded())
    }

    /// Bytes per token of an expanded K/V cache in f16 (the layout of engines without MLA's latent cache).
    static func expandedF16KVBytesPerToken(_ config: ModelConfig) -> Int {
        config.numAttentionHeads * (config.qkNopeHeadDim + config.qkRopeHeadDim + config.vHeadDim)
            * config.numHiddenLayers * 2
    }
}
