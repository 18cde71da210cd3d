import Foundation
import DSV2Core
import DSV2Text

extension SamplingOptions {
    /// What dsv2 samples with when the model's generation_config.json says nothing about
    /// sampling: temperature 0.8, top-k 40, top-p 0.95, min-p 0.05 (the usual defaults of local
    /// LLM tools). `SamplingOptions()` stays greedy: a value built field by field starts from nothing.
    public static let standard = SamplingOptions(temperature: 0.8, topK: 40, topP: 0.95, minP: 0.05)
}

/// The generation settings a model ships with: the ids that end a generation and the sampling
/// parameters, from config.json, tokenizer_config.json and generation_config.json.
///
/// generation_config.json is read as Hugging Face `GenerationConfig` means it: `do_sample: false`
/// is greedy decoding; `temperature`, `top_k`, `top_p`, `min_p` and `repetition_penalty` replace
/// the matching field of `SamplingOptions.standard` (a key the file lacks keeps the standard
/// value). A file with neither `do_sample` nor any of those keys leaves the standard sampling.
public struct GenerationDefaults: Equatable, Sendable {
    /// config.json's `eos_token_id`(s), the tokenizer's `eos_token` and generation_config.json's
    /// `eos_token_id`(s): sampling any of them ends a generation.
    public var eosTokenIds: Set<Int>
    public var sampling: SamplingOptions
    /// The generation_config.json keys that set `sampling`, as `key=value` in file order (for
    /// `--verbose`); empty when the sampling is the standard one.
    public var samplingSources: [String]

    public init(eosTokenIds: Set<Int>, sampling: SamplingOptions = .standard, samplingSources: [String] = []) {
        self.eosTokenIds = eosTokenIds
        self.sampling = sampling
        self.samplingSources = samplingSources
    }

    /// - Parameters:
    ///   - generationConfigJSON: the bytes of generation_config.json, nil when the model has none.
    ///   - path: names the file in errors.
    public init(config: ModelConfig, tokenizer: Tokenizer?, generationConfigJSON: Data?,
                path: String = "generation_config.json") throws {
        var eos = Set(config.eosTokenIds)
        if let id = tokenizer?.eosTokenId { eos.insert(id) }
        var sampling = SamplingOptions.standard
        var sources: [String] = []
        if let generationConfigJSON {
            let file = try GenerationConfigFile(generationConfigJSON, path: path)
            eos.formUnion(file.eosTokenIds)
            if let temperature = file.temperature { sampling.temperature = temperature; sources.append("temperature=\(temperature)") }
            if let topK = file.topK { sampling.topK = topK; sources.append("top_k=\(topK)") }
            if let topP = file.topP { sampling.topP = topP; sources.append("top_p=\(topP)") }
            if let minP = file.minP { sampling.minP = minP; sources.append("min_p=\(minP)") }
            if let penalty = file.repetitionPenalty {
                sampling.repetitionPenalty = penalty
                sources.append("repetition_penalty=\(penalty)")
            }
            if file.doSample == false { sampling.temperature = 0; sources.append("do_sample=false") }
        }
        self.init(eosTokenIds: eos, sampling: sampling, samplingSources: sources)
    }
}

/// The keys of generation_config.json dsv2 uses, checked for type and range.
struct GenerationConfigFile {
    var eosTokenIds: [Int] = []
    var doSample: Bool?
    var temperature: Float?
    var topK: Int?
    var topP: Float?
    var minP: Float?
    var repetitionPenalty: Float?

    init(_ data: Data, path: String) throws {
        let root: JSONValue
        do { root = try JSONValue.parse(data) } catch {
            throw GenerationConfigError(path: path, key: nil, reason: "is not valid JSON (\(error))")
        }
        guard root.objectValue != nil else { throw GenerationConfigError(path: path, key: nil, reason: "is not a JSON object") }
        func present(_ key: String) -> JSONValue? {
            guard let value = root[key], !value.isNull else { return nil }
            return value
        }
        func number(_ key: String, _ valid: (Double) -> Bool, _ range: String) throws -> Double? {
            guard let value = present(key) else { return nil }
            guard case let .number(d) = value, d.isFinite, valid(d) else {
                throw GenerationConfigError(path: path, key: key, reason: "must be a number \(range)")
            }
            return d
        }
        if let eos = present("eos_token_id") {
            let values = eos.arrayValue ?? [eos]
            eosTokenIds = try values.map { value in
                guard let id = value.intValue, id >= 0 else {
                    throw GenerationConfigError(path: path, key: "eos_token_id", reason: "must be a token id or a list of them")
                }
                return id
            }
        }
        if let value = present("do_sample") {
            guard let flag = value.boolValue else { throw GenerationConfigError(path: path, key: "do_sample", reason: "must be true or false") }
            doSample = flag
        }
        temperature = try number("temperature", { $0 >= 0 }, "≥ 0").map(Float.init)
        if let k = try number("top_k", { $0 >= 0 && $0.rounded() == $0 && $0 < 1e9 }, "(an integer ≥ 0)") { topK = Int(k) }
        topP = try number("top_p", { $0 > 0 && $0 <= 1 }, "in (0, 1]").map(Float.init)
        minP = try number("min_p", { $0 >= 0 && $0 <= 1 }, "in [0, 1]").map(Float.init)
        repetitionPenalty = try number("repetition_penalty", { $0 > 0 }, "> 0").map(Float.init)
    }
}

/// A generation_config.json that cannot be used: names the file and the key.
public struct GenerationConfigError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var key: String?
    public var reason: String

    public var description: String {
        key.map { "\(path): \"\($0)\" \(reason)" } ?? "\(path) \(reason)"
    }
}
