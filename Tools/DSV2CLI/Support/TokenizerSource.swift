import DSV2
import Foundation

/// The tokenizer files behind `-m/--model` for the commands that only tokenize: a model (folder
/// or .dsv2, through `Model.open`; the embedded tiny-dsv2 when absent) or a folder holding only
/// tokenizer.json (+ tokenizer_config.json), as Hugging Face tokenizer repositories are.
struct TokenizerSource {
    var tokenizerJSON: Data
    var configJSON: Data?
    /// How the files are named in messages.
    var path: String
    var configPath: String

    init(_ model: String?) throws {
        if let model, (try? FileKind(path: model)) == .directory,
           !FileManager.default.fileExists(atPath: model + "/config.json"),
           FileManager.default.fileExists(atPath: model + "/tokenizer.json") {
            let folder = URL(fileURLWithPath: model)
            path = folder.appendingPathComponent("tokenizer.json").path
            configPath = folder.appendingPathComponent("tokenizer_config.json").path
            tokenizerJSON = try InputFile.read(path, option: "-m/--model")
            configJSON = FileManager.default.fileExists(atPath: configPath) ? try InputFile.read(configPath, option: "-m/--model") : nil
            return
        }
        let opened = try ModelSelection.open(model)
        guard let json = opened.files["tokenizer.json"] else {
            throw ModelOpenError.noTokenizer(path: opened.url.path, format: opened.format)
        }
        tokenizerJSON = json
        configJSON = opened.files["tokenizer_config.json"]
        path = opened.format == .huggingFace ? opened.url.appendingPathComponent("tokenizer.json").path : opened.url.path + ":tokenizer.json"
        configPath = opened.format == .huggingFace ? opened.url.appendingPathComponent("tokenizer_config.json").path
                                                   : opened.url.path + ":tokenizer_config.json"
    }

    /// A tokenizer built from the files (a new one each call: benchmarks want a cold cache).
    func makeTokenizer() throws -> Tokenizer {
        try Tokenizer(tokenizerJSON: tokenizerJSON, configJSON: configJSON, path: path, configPath: configPath)
    }
}
