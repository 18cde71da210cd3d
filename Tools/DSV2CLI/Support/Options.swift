import ArgumentParser
import CBLAS
import DSV2
import Foundation

// The flags shared by the commands, declared once so every command spells them the same way
// (README.md, "Flags").

/// `-m/--model`: a Hugging Face folder or a `.dsv2` container; the embedded tiny-dsv2 when absent.
struct ModelSelection: ParsableArguments {
    @Option(name: [.customShort("m"), .long],
            help: ArgumentHelp("A Hugging Face folder or a .dsv2 container (default: the embedded tiny-dsv2).",
                               valueName: "hf-folder|model.dsv2"))
    var model: String?

    @Flag(name: .customLong("no-verify"), help: "Skip the load-time check of a raw .dsv2 container's tensor checksums and finiteness.")
    var noVerify = false

    /// Opens `--model`, or the embedded default model.
    func open() throws -> Model { try Self.open(model, verify: !noVerify) }

    static func open(_ path: String?, verify: Bool = true) throws -> Model {
        try path.map { try Model.open($0, verify: verify) } ?? Model.openDefault()
    }
}

/// `--engine`, `--quant` and the engines' own options.
struct EngineOptions: ParsableArguments {
    @Option(name: .long, help: "quantized (the default) or reference (the fp32 oracle; Hugging Face folders only).")
    var engine: EngineKind?

    @Option(name: .long, help: ArgumentHelp("Quantization of the quantized engine (implies --engine quantized): \(QuantizationPolicy.presetNames.joined(separator: ", ")); default q8 for a folder, the stored one for a .dsv2.", valueName: "preset"))
    var quant: String?

    @Option(name: .long, help: "Reference engine: the MLA form, expanded (default) or absorbed.")
    var mla: AttentionForm?

    @Option(name: .long, help: "Reference engine: weights widened to fp32 (default) or mapped (read from the checkpoint; models larger than memory).")
    var weights: WeightStorage?

    @OptionGroup var quantized: QuantizedEngineOptions

    /// The engine: `--engine`, else quantized (which `--quant` implies).
    var kind: EngineKind { engine ?? .quantized }

    func validate() throws {
        switch kind {
        case .reference:
            if let quant, quant.lowercased() != "f32" {
                throw ValidationError("--quant \(quant) needs the quantized engine; the reference computes in fp32 (drop --engine reference)")
            }
            if quantized.kvCache != nil { throw ValidationError("--kv-cache applies to the quantized engine, not --engine reference") }
        case .quantized:
            if mla != nil { throw ValidationError("--mla applies to --engine reference") }
            if weights != nil { throw ValidationError("--weights applies to --engine reference") }
        }
    }

    func choice(threads: Int?) -> EngineChoice {
        switch kind {
        case .reference: return .reference(form: mla ?? .expanded, storage: weights ?? .fp32)
        case .quantized: return quantized.choice(preset: quant, threads: threads)
        }
    }
}

/// `--kv-cache` and `--allow-requantize`: how the quantized engine holds its cache and weights.
struct QuantizedEngineOptions: ParsableArguments {
    @Option(name: .customLong("kv-cache"), help: "Element type of the quantized engine's latent KV cache: f16 (default), bf16 (faster attention with AVX-512 BF16, 8-bit mantissa) or f32.")
    var kvCache: KVCacheType?

    @Flag(name: .customLong("allow-requantize"), help: "Let --quant convert a container stored in another quantized preset (lossy: its values were already rounded).")
    var allowRequantize = false

    func choice(preset: String?, threads: Int?) -> EngineChoice {
        .quantized(preset: preset, threads: threads, kvCache: kvCache ?? .f16, allowRequantize: allowRequantize)
    }
}

/// `-t/--threads` and `--threads-force`: one check for every command.
struct ThreadOptions: ParsableArguments {
    @Option(name: [.customShort("t"), .long], help: "Threads (default: one per core; one for a model of hidden size ≤ 512).")
    var threads: Int?

    @Flag(name: .customLong("threads-force"), help: "Allow more than \(ThreadLimit.perCore) threads per core.")
    var threadsForce = false

    func validate() throws {
        if let threads { try ThreadLimit.check(threads, force: threadsForce) }
    }

    /// `--threads`, else one per core.
    var count: Int { threads ?? ProcessInfo.processInfo.activeProcessorCount }
}

/// More threads than cores only add switching: 64 threads on 2 cores ran ~100× slower, and a
/// huge count exhausted the system's thread limit.
enum ThreadLimit {
    static let perCore = 4
    /// Even with --threads-force.
    static let absolute = 1024

    static func check(_ threads: Int, force: Bool, option: String = "-t/--threads") throws {
        let cores = ProcessInfo.processInfo.activeProcessorCount
        guard threads >= 1 else { throw ValidationError("\(option) must be at least 1 (got \(threads))") }
        guard threads <= absolute else { throw ValidationError("\(option) \(threads) is above the limit of \(absolute)") }
        guard force || threads <= perCore * cores else {
            throw ValidationError("\(option) \(threads) is more than \(perCore) per core (\(cores) cores): it would run slower, not faster; add --threads-force to run anyway")
        }
    }

    /// Parses a comma-separated list of thread counts (bench), each checked.
    static func parseList(_ text: String, force: Bool) throws -> [Int] {
        let counts = try text.split(separator: ",", omittingEmptySubsequences: false).map { part -> Int in
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("-t/--threads: '\(part)' is not a number (give counts separated by commas, e.g. 1,2)")
            }
            return n
        }
        for n in counts { try check(n, force: force) }
        return counts
    }
}

/// `--no-memory-check` and `-v/--verbose`: what is said and checked before a model is loaded.
struct LoadOptions: ParsableArguments {
    @Flag(name: .customLong("no-memory-check"), help: "Load even when the estimated memory exceeds what is available.")
    var noMemoryCheck = false

    @Flag(name: [.customShort("v"), .long], help: "Print the model, engine, memory estimate and generation defaults on stderr.")
    var verbose = false

    /// Estimates the memory of `choice` over `contextTokens` (longest pass `longestPass`), prints it
    /// with --verbose, refuses when it exceeds what is available (unless --no-memory-check), then
    /// builds the engine. `threads` also sets the reference's BLAS threads.
    /// `logitsRows`: rows of logits the command keeps (times `logitsCopies` copies), counted as outputs.
    func load(_ model: Model, _ choice: EngineChoice, threads: Int?, contextTokens: Int, longestPass: Int,
              traced: Bool = false, logitsRows: Int = 0, logitsCopies: Int = 1) throws -> LanguageModel {
        try check(model, choice, contextTokens: contextTokens, longestPass: longestPass, traced: traced,
                  outputBytes: logitsRows * model.config.vocabSize * 4 * logitsCopies)
        if case .reference = choice, let threads { openblas_set_num_threads(Int32(threads)) }
        return try model.makeEngine(choice)
    }

    /// The memory estimate and check of `load`, without building the engine (for a command that
    /// builds it elsewhere, as the server does).
    func check(_ model: Model, _ choice: EngineChoice, contextTokens: Int, longestPass: Int,
               traced: Bool = false, outputBytes: Int = 0) throws {
        var estimate = try model.memoryEstimate(choice, contextTokens: contextTokens, longestPass: longestPass, traced: traced)
        estimate.outputBytes = outputBytes
        let available = MemoryEstimate.availableBytes()
        if verbose {
            note(describe(model))
            note("engine: \(model.label(choice))" + threadsNote(model, choice))
            note(Self.describe(estimate, available: available))
        }
        if !noMemoryCheck, estimate.totalBytes > available {
            throw MemoryCheckError(estimate: estimate, availableBytes: available, engine: model.label(choice))
        }
    }

    /// The generation defaults the model brings, for --verbose.
    func noteDefaults(_ defaults: GenerationDefaults) {
        guard verbose else { return }
        let s = defaults.sampling
        let sampling = s.temperature == 0 ? "greedy"
            : String(format: "temperature %g, top-k %d, top-p %g, min-p %g, repeat penalty %g",
                     s.temperature, s.topK, s.topP, s.minP, s.repetitionPenalty)
        let source = defaults.samplingSources.isEmpty ? "dsv2's standard sampling (no sampling keys in generation_config.json)"
                                                      : "generation_config.json: " + defaults.samplingSources.joined(separator: ", ")
        note("generation defaults: EOS \(defaults.eosTokenIds.sorted()), \(sampling) (\(source))")
    }

    private func note(_ line: String) { Terminal.writeError(line + "\n") }

    private func describe(_ model: Model) -> String {
        let c = model.config
        let format = model.format == .huggingFace ? "Hugging Face folder" : ".dsv2 container, stored \(model.storedQuantization ?? "?")"
        return "model: \(model.url.path) (\(format)): \(c.numHiddenLayers) layers, hidden \(c.hiddenSize), "
            + "\(c.routedExpertCount) routed experts, \(c.parameterCount) parameters"
    }

    private func threadsNote(_ model: Model, _ choice: EngineChoice) -> String {
        guard case let .quantized(_, threads, kvCache, _) = choice else { return "" }
        let count = threads ?? model.automaticThreads
        return ", \(kvCache.rawValue) KV cache, \(count) thread\(count == 1 ? "" : "s")"
    }

    static func describe(_ e: MemoryEstimate, available: Int) -> String {
        "memory: weights \(MemoryFigures.bytes(e.weightBytes)) + KV cache \(MemoryFigures.bytes(e.kvCacheBytes)) "
            + "(\(e.contextTokens) tokens) + workspace \(MemoryFigures.bytes(e.workspaceBytes))"
            + (e.outputBytes > 0 ? " + outputs \(MemoryFigures.bytes(e.outputBytes))" : "") + " = "
            + "\(MemoryFigures.bytes(e.totalBytes)); available \(MemoryFigures.bytes(available))"
    }
}

/// `-o/--output` and `--force` of the commands that write a file.
struct OutputOptions: ParsableArguments {
    @Option(name: .shortAndLong, help: "The file to write (through a temporary file renamed into place at the end).")
    var output: String

    @Flag(help: "Overwrite the output if it exists.")
    var force = false

    /// The output URL; refused when it exists and --force is not given, or when it is a folder.
    func destination() throws -> URL {
        let url = URL(fileURLWithPath: output)
        if let kind = try? FileKind(path: url.path) {
            if kind == .directory { throw UsageError("-o/--output \(output) is a folder; give a file name") }
            if !force { throw UsageError("\(output) exists; add --force to overwrite it") }
        }
        return url
    }
}
