import ArgumentParser
import Foundation
import DSV2Container
import DSV2Core
import DSV2Formats

/// `dsv2 inspect`: what a container holds.
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Show a .dsv2 container's (or a .gguf file's) config, tensor table, sizes, compression ratios and provenance.")

    @Argument(help: "The container (or a GGUF file).")
    var container: String

    @Option(name: .customLong("dump-values"), help: "GGUF only: write every tensor's values as f32 to FILE, in table order (checks against other readers).")
    var dumpValues: String?

    @Flag(help: "Print JSON (the container metadata plus totals) instead of a table.")
    var json = false

    @Flag(help: "List every tensor (by default long runs of expert tensors are summarised per layer).")
    var all = false

    struct Totals: Codable {
        var type: String
        var tensors: Int
        var rawBytes: Int
        var storedBytes: Int
    }

    struct Report: Codable {
        var path: String
        var fileSize: Int
        var metadata: ContainerMetadata
        var totals: [Totals]
    }

    func run() throws {
        if GGUFCLI.isGGUF(container) { return try GGUFCLI.inspect(container, all: all, json: json, dumpValues: dumpValues) }
        let reader = try ContainerReader(path: container)
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
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = try encoder.encode(Report(path: container, fileSize: reader.file.size, metadata: meta, totals: totals))
            print(String(decoding: data, as: UTF8.self))
            return
        }
        print("\(container): dsv2 container v\(meta.formatVersion), \(meta.converterVersion), zstd \(meta.zstdVersion)")
        print("quantization: \(meta.quantization)   file: \(ProgressReporter.bytes(reader.file.size))")
        if let config = try? ModelConfig.decode(reader.configJSON) {
            print("config: \(config.numHiddenLayers) layers, hidden \(config.hiddenSize), \(config.numAttentionHeads) heads, "
                  + "vocab \(config.vocabSize), q_lora_rank \(config.qLoraRank.map(String.init) ?? "null"), kv_lora_rank \(config.kvLoraRank), "
                  + "experts \(config.nRoutedExperts ?? 0) routed + \(config.nSharedExperts ?? 0) shared (top-\(config.numExpertsPerTok ?? 0), \(config.topkMethod.rawValue))")
        } else {
            print("config: (config.json does not decode as a DeepSeek-V2 config)")
        }
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
    }
}
