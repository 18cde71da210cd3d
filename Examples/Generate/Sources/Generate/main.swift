import DSV2
import Foundation

// generate-example [MODEL [PROMPT]]
// MODEL: a Hugging Face folder or a .dsv2 container (default: the embedded tiny-dsv2).
let arguments = Array(CommandLine.arguments.dropFirst())
let model = try arguments.first.map { try Model.open($0) } ?? Model.openDefault()
let prompt = arguments.count > 1 ? arguments[1] : "The meaning of life is"

// The model's own defaults: EOS ids and the sampling of its generation_config.json.
let session = try model.session(.quantized(), contextLength: 512)
let request = GenerationRequest(maxTokens: 40, logprobs: true)

print(prompt, terminator: "")
var logprob = 0.0, tokens = 0
for try await event in session.stream(prompt, request: request) {
    switch event {
    case let .token(token):
        print(token.text, terminator: "")
        fflush(stdout)
        logprob += token.logprob ?? 0
        tokens += 1
    case let .text(held):
        print(held, terminator: "")
    case let .finished(result):
        print("")
        print("finish: \(result.stopReason.finishReason), prompt tokens \(result.promptTokens), "
              + "completion tokens \(result.generatedTokens), mean logprob \(String(format: "%.3f", logprob / Double(max(1, tokens))))")
    }
}
