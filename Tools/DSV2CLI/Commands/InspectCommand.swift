import ArgumentParser
import Foundation
import DSV2

/// `dsv2 inspect`: what a container holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a .dsv2 container's (or a Hugging Face folder's, or a .gguf file's) config, tensors, sizes, provenance and the memory it needs to run.")

    @Argument(help: ArgumentHelp("A .dsv2 container, a Hugging Face folder or a .gguf file.", valueName: "model.dsv2|hf-folder|model.gguf"))
    var path: String

    @Option(name: .customLong("dump-values"), help: "GGUF only: write every tensor's values as f32 to FILE, in table order (checks against other readers).")
    var dumpValues: String?

    @Flag(help: "Print JSON (the container metadata, totals and the memory estimate) instead of a table.")
    var json = false

    @Flag(help: "List every tensor (by default long runs of expert tensors are summarised per layer).")
    var all = false

    @OptionGroup var engine: EngineOptions

    @Option(name: [.customShort("c"), .customLong("ctx-size")],
            help: "Context length of the memory estimate (default: what chat uses, min(max_position_embeddings, \(ChatCommand.defaultContext))).")
    var contextSize: Int?

    struct Totals: Codable {
        var type: String
        var tensors: Int
        var rawBytes: Int
        var storedBytes: Int
    }

    struct Memory: Encodable {
        var engine: String
        var contextTokens: Int
        var weightBytes: Int
        var kvCacheBytes: Int
        var workspaceBytes: Int
        var totalBytes: Int
        var availableBytes: Int
    }

    struct Report: Encodable {
        var path: String
        var format: String
        var fileSize: Int
        var metadata: ContainerMetadata?
        var totals: [Totals]
        var memory: Memory
    }

    func run() throws {
        if GGUFCLI.isGGUF(path) { return try GGUFCLI.inspect(path, all: all, json: json, dumpValues: dumpValues) }
        let model = try Model.open(path)
        let choice = engine.choice(threads: nil)
        let context = contextSize ?? min(model.config.maxPositionEmbeddings, ChatCommand.defaultContext)
        let estimate = try model.memoryEstimate(choice, contextTokens: context,
                                                longestPass: min(context, QuantizedEngine.defaultPrefillChunkTokens))
        let memory = Memory(engine: model.label(choice), contextTokens: estimate.contextTokens, weightBytes: estimate.weightBytes,
                            kvCacheBytes: estimate.kvCacheBytes, workspaceBytes: estimate.workspaceBytes,
                            totalBytes: estimate.totalBytes, availableBytes: MemoryEstimate.availableBytes())
        guard let reader = model.weights as? ContainerReader else {
            try inspectFolder(model, memory: memory, estimate: estimate)
            return
        }
        let container = path
        let meta = reader.metadata
        var byType: [WeightType: Totals] = [:]
        for t in meta.tensors {
            var total = byType[t.type] ?? Totals(type: t.type.rawValue, tensors: 0, rawBytes: 0, storedBytes: 0)
            total.tensors += 1
            total.rawBytes += t.rawSize
            total.storedBytes += t.storedSize
            byType[t.type] = total
        }
        let totals = WeightType.allCases.compactMap { byType[$0] }
        if json {
            try JSONOutput.print(Report(path: container, format: "dsv2", fileSize: reader.file.size, metadata: meta,
                                        totals: totals, memory: memory), pretty: true)
            return
        }
        print("\(container): dsv2 container v\(meta.formatVersion), \(meta.converterVersion), zstd \(meta.zstdVersion)")
        print("quantization: \(meta.quantization)   file: \(ProgressReporter.bytes(reader.file.size))")
        printConfig(model.config)
        print("files: " + meta.files.map { "\($0.name) (\(ProgressReporter.bytes($0.size)))" }.joined(separator: ", "))
        print("provenance: \(meta.provenance.sourceFormat) \(meta.provenance.sourceName)")
        for f in meta.provenance.files { print("  \(f.name)  \(f.size) bytes  xxh64 \(f.checksum)") }
        if let derived = meta.provenance.derivedFrom {
            for f in derived { print("  derived from \(f.name)  \(f.size) bytes  xxh64 \(f.checksum)") }
        }
        print("")
        func line(_ name: String, _ type: String, _ shape: String, _ raw: String, _ stored: String, _ ratio: String, _ compression: String) {
            print(name.padding(toLength: max(name.count, 56), withPad: " ", startingAt: 0) + "  "
                  + type.padding(toLength: 5, withPad: " ", startingAt: 0)
                  + shape.padding(toLength: 16, withPad: " ", startingAt: 0)
                  + String(repeating: " ", count: max(0, 12 - raw.count)) + raw + " "
                  + String(repeating: " ", count: max(0, 12 - stored.count)) + stored + "  "
                  + ratio.padding(toLength: 7, withPad: " ", startingAt: 0) + " " + compression)
        }
        func row(_ name: String, _ type: String, _ shape: String, _ raw: Int, _ stored: Int, _ compression: String) {
            let ratio = stored > 0 ? String(format: "%.3f", Double(raw) / Double(stored)) : "-"
            line(name, type, shape, "\(raw)", "\(stored)", ratio, compression)
        }
        line("tensor", "type", "shape", "raw bytes", "stored", "ratio", "compression")
        var pendingExperts: (prefix: String, count: Int, raw: Int, stored: Int, types: Set<String>, compression: String)?
        func flush() {
            if let p = pendingExperts {
                row("\(p.prefix)* (\(p.count) tensors)", p.types.sorted().joined(separator: "/"), "", p.raw, p.stored, p.compression)
            }
            pendingExperts = nil
        }
        for t in meta.tensors {
            if !all, let range = t.name.range(of: ".mlp.experts.") {
                let prefix = String(t.name[..<range.upperBound])
                if pendingExperts?.prefix != prefix { flush(); pendingExperts = (prefix, 0, 0, 0, [], t.compression.rawValue) }
                pendingExperts!.count += 1
                pendingExperts!.raw += t.rawSize
                pendingExperts!.stored += t.storedSize
                pendingExperts!.types.insert(t.type.rawValue)
                continue
            }
            flush()
            row(t.name, t.type.rawValue, "\(t.shape)", t.rawSize, t.storedSize, t.compression.rawValue)
        }
        flush()
        print("")
        var raw = 0, stored = 0
        for total in totals {
            raw += total.rawBytes
            stored += total.storedBytes
            row("total \(total.type) (\(total.tensors) tensors)", total.type, "", total.rawBytes, total.storedBytes, "")
        }
        row("total (\(meta.tensors.count) tensors)", "", "", raw, stored, "")
        print("")
        print(LoadOptions.describe(estimate, available: memory.availableBytes) + " (\(memory.engine))")
    }

    /// A Hugging Face folder: config, tensors by source type, the memory estimate.
    private func inspectFolder(_ model: Model, memory: Memory, estimate: MemoryEstimate) throws {
        var byType: [WeightType: Totals] = [:]
        for name in model.weights.tensorNames {
            guard let info = model.weights.tensorInfo(name) else { continue }
            let bytes = info.type.byteCount(rows: info.shape.count == 2 ? info.shape[0] : 1, columns: info.shape.last ?? 1)
            var total = byType[info.type] ?? Totals(type: info.type.rawValue, tensors: 0, rawBytes: 0, storedBytes: 0)
            total.tensors += 1
            total.rawBytes += bytes
            total.storedBytes += bytes
            byType[info.type] = total
        }
        let totals = WeightType.allCases.compactMap { byType[$0] }
        if json {
            try JSONOutput.print(Report(path: path, format: "hf", fileSize: totals.reduce(0) { $0 + $1.storedBytes },
                                        metadata: nil, totals: totals, memory: memory), pretty: true)
            return
        }
        print("\(path): Hugging Face folder, \(model.weights.tensorNames.count) tensors")
        printConfig(model.config)
        print("files: " + model.files.keys.sorted().joined(separator: ", "))
        for total in totals {
            print("  \(total.type): \(total.tensors) tensors, \(ProgressReporter.bytes(total.rawBytes))")
        }
        print(LoadOptions.describe(estimate, available: memory.availableBytes) + " (\(memory.engine))")
    }

    private func printConfig(_ config: ModelConfig) {
        print("config: \(config.numHiddenLayers) layers, hidden \(config.hiddenSize), \(config.numAttentionHeads) heads, "
              + "vocab \(config.vocabSize), q_lora_rank \(config.qLoraRank.map(String.init) ?? "null"), kv_lora_rank \(config.kvLoraRank), "
              + "experts \(config.nRoutedExperts ?? 0) routed + \(config.nSharedExperts ?? 0) shared (top-\(config.numExpertsPerTok ?? 0), \(config.topkMethod.rawValue)), "
              + "max_position_embeddings \(config.maxPositionEmbeddings)")
    }
}
