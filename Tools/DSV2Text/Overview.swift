// Tokenizer: overview of this folder (kept as a comment: a README here would be an unhandled
// SwiftPM resource of the DSV2Text target).
//
// # Tokenizer
//
// Hugging Face byte-level BPE tokenizers (`tokenizer.json` + `tokenizer_config.json`) as the
// DeepSeek family ships them, encoding and decoding exactly like HF `tokenizers`, plus the
// `chat_template` (a Jinja subset rendered like transformers' `apply_chat_template`).
//
// | file | concept |
// |---|---|
// | `Tokenizer.swift` | public API; encode = added tokens -> pre-tokenizer steps (depth first) -> BPE per piece (cached) |
// | `TokenizerLoader.swift` | reads the pipeline; unsupported components are errors naming the field |
// | `ScalarRegex.swift`, `RegexParser.swift`, `ScalarSet.swift` | backtracking regex over Unicode scalars for `Split` (Oniguruma semantics) |
// | `ScalarRegex+Memo.swift` | the memoizing matcher it falls back to, so no pattern backtracks more than linearly |
// | `UnicodeTables.swift` | `\s` and Rust `is_numeric` sets, generated from the fixture's `unicode_classes.json` |
// | `BPEModel.swift`, `PieceCache.swift`, `ByteStringTable.swift` | merges, piece cache, vocabulary tables |
// | `ByteLevel.swift` | GPT-2 byte <-> character alphabet |
// | `PreTokenizer.swift` | split behaviours, added-token matcher |
// | `JSONValue.swift` | scalar-exact JSON (never compare these strings with Swift `==`: it is canonical equivalence) |
// | `ChatTemplate.swift`, `Jinja*.swift` | chat template |
// | `StreamingDecoder.swift` | incremental detokenizer for generation (HF `DecodeStream`) |
// | `TokenizerError.swift` | every error, naming the file, field or construct |
//
// Sampling and stop strings are in `Tools/DSV2Generation/`.
// Speed: `dsv2 bench tokenizer` (about 12-14 MB per CPU-second on the 2-vCPU VM, ~10x HF tokenizers).
