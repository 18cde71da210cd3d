// swift-tools-version:6.0
// dsv2: DeepSeek-V2 on an ordinary CPU.
//
// One concept per target; the arrows run one way (README.md, "Targets"):
//
//   DSV2Core ← DSV2Reference (the fp32 oracle: a leaf, imported only by the CLI, the umbrella, tests)
//   DSV2Core ← DSV2Formats ← DSV2Kernels ← DSV2Quantized (the fast engine)
//              DSV2Formats ← DSV2Container ← DSV2Converter
//   DSV2Text (tokenizer, chat template: nothing of ours)
//   DSV2Core + DSV2Text ← DSV2Generation;  DSV2Core ← DSV2Analysis
//   all of the above ← DSV2 (the umbrella: Model.open) ← DSV2Server (HTTP) ← DSV2CLI ← dsv2
import PackageDescription

// DSV2_PORTABLE=1 builds without any x86-64 flag or intrinsic: the portable Swift SIMD kernels
// only, for arm64 or for testing that path here.
let portable = Context.environment["DSV2_PORTABLE"].map { $0 == "1" } ?? false
#if arch(x86_64)
let x86 = !portable
#else
let x86 = false
#endif

// The kernels are written for x86-64-v3 (AVX2, FMA, F16C). Without this flag swiftc targets
// baseline x86-64 and every `addProduct` / Float16 conversion becomes a library call (12x
// slower); it changes Swift code generation, not only C (docs/KERNELS.md).
let cpuFlags: [SwiftSetting] = x86 ? [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]
                                   : [.define("DSV2_PORTABLE")]
// C that must run on any x86-64 CPU (the CPU feature query and the refusal of a CPU that lacks
// x86-64-v3) is compiled without -march: the compiler may use AVX2 anywhere in code built with it.
let baselineCFlags: [CSetting] = [.unsafeFlags(["-O2"])] + (x86 ? [] : [.define("DSV2_PORTABLE")])
// The VNNI row dots: one module per encoding of vpdpbusd, each the only code compiled with its
// features (Swift takes its LLVM target features from the clang importer options, so LLVM may
// emit those instructions only there); DSV2Kernels calls in only after a run-time CPU check.
// Never add these flags elsewhere: the instructions could then appear anywhere and SIGILL on
// CPUs without them (scripts/check-codegen fails if they do).
func featureModule(_ features: [String], defines: [SwiftSetting] = []) -> [SwiftSetting] {
    (x86 ? [.unsafeFlags((["-march=x86-64-v3"] + features).flatMap { ["-Xcc", $0] })] + defines
         : [.define("DSV2_PORTABLE")]) + unchecked
}
// -Ounchecked on the hot loops (+17% on the int4 kernel; index arithmetic already uses &+).
let unchecked: [SwiftSetting] = [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]

// scripts/fuzz sets DSV2_FUZZ=1 to add the libFuzzer executable (Tests/Fuzz/Main). Never in a
// normal build: -sanitize=fuzzer supplies its own `main`. The fuzz targets themselves
// (DSV2Fuzz) are ordinary code that FuzzTests replays.
let fuzzing = Context.environment["DSV2_FUZZ"] == "1"
let fuzzExecutable: [Target] = fuzzing
    ? [.target(name: "CFuzzDriver", path: "Tests/Fuzz/CFuzzDriver"),
       .executableTarget(name: "dsv2-fuzz", dependencies: ["DSV2Fuzz", "CFuzzDriver"], path: "Tests/Fuzz/Main")] : []

// The server's tests use Hummingbird's test client (AsyncHTTPClient, which compiles BoringSSL:
// about as long as the rest of the package). The DSV2_PORTABLE=1 run exists to test the portable
// kernels, so it leaves them out; every other build has them.
let serverTests: [Target] = portable ? [] : [
    .testTarget(name: "ServerTests", dependencies: ["DSV2Server", "DSV2", "TestSupport",
                                                    .product(name: "HummingbirdTesting", package: "hummingbird")],
                path: "Tests/ServerTests", swiftSettings: cpuFlags),
]

let package = Package(
    name: "dsv2",
    products: [
        .library(name: "DSV2", targets: ["DSV2"]),
        .library(name: "DSV2Core", targets: ["DSV2Core"]),
        .library(name: "DSV2Text", targets: ["DSV2Text"]),
        .library(name: "DSV2Reference", targets: ["DSV2Reference"]),
        .library(name: "DSV2Quantized", targets: ["DSV2Quantized"]),
        .library(name: "DSV2Converter", targets: ["DSV2Converter"]),
        .executable(name: "dsv2", targets: ["dsv2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
    ],
    targets: [
        // MARK: System libraries
        .systemLibrary(name: "CBLAS", path: "Reference/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkgconf"])]),
        .systemLibrary(name: "CZstd", path: "Converter/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev", "pkgconf"])]),

        // MARK: Model definition shared by both engines (Reference/)
        .target(name: "DSV2Core", path: "Reference/DSV2Core", swiftSettings: cpuFlags),
        // The fp32 oracle: nothing but the CLI, the umbrella and tests import it.
        .target(name: "DSV2Reference", dependencies: ["DSV2Core", "CBLAS"], path: "Reference/DSV2Reference",
                swiftSettings: cpuFlags),

        // MARK: Weight formats, kernels and the fast engine (Quantized/)
        .target(name: "DSV2Formats", dependencies: ["DSV2Core"], path: "Quantized/DSV2Formats",
                swiftSettings: cpuFlags + unchecked),
        .target(name: "CKernelSupport", path: "Quantized/CKernelSupport", cSettings: baselineCFlags),
        // The refusal of a CPU without x86-64-v3: a constructor that runs before main.
        .target(name: "CPUCheck", dependencies: ["CKernelSupport"], path: "Quantized/CPUCheck",
                cSettings: baselineCFlags),
        // AVX-VNNI (VEX vpdpbusd).
        .target(name: "DSV2KernelsVNNI", dependencies: ["CKernelSupport"], path: "Quantized/KernelsVNNI",
                swiftSettings: featureModule(["-mavxvnni"])),
        // AVX-512 VNNI (EVEX vpdpbusd): the same source file as DSV2KernelsVNNI (a link) with
        // DSV2_AVX512 defined, plus micro-kernels that need 32 vector registers; and the latent
        // attention products of DSV2Kernels (LatentProducts.swift, a link) on zmm registers.
        .target(name: "DSV2KernelsAVX512", dependencies: ["CKernelSupport"], path: "Quantized/KernelsAVX512",
                swiftSettings: featureModule(["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512vnni"],
                                             defines: [.define("DSV2_AVX512")])),
        // AVX-512 BF16 (vdpbf16ps): the latent attention products on a bf16 cache. C, because Swift
        // cannot import the intrinsics' bf16 vector types; the only code built with -mavx512bf16
        // (called after a run-time CPU check; scripts/check-codegen confines the instructions).
        .target(name: "CKernelsBF16", path: "Quantized/CKernelsBF16",
                cSettings: x86 ? [.unsafeFlags(["-O2", "-march=x86-64-v3", "-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512bf16"])]
                               : [.define("DSV2_PORTABLE")]),
        .target(name: "DSV2Kernels", dependencies: ["DSV2Formats", "CKernelSupport", "CKernelsBF16", "DSV2KernelsVNNI", "DSV2KernelsAVX512"],
                path: "Quantized/DSV2Kernels", swiftSettings: cpuFlags + unchecked),
        .target(name: "DSV2Quantized", dependencies: ["DSV2Core", "DSV2Formats", "DSV2Kernels"],
                path: "Quantized/DSV2Quantized", swiftSettings: cpuFlags + unchecked),

        // MARK: Container and converter (Converter/)
        // XXH64's inner loop, in C for its code generation (the file says why).
        .target(name: "CXXH64", path: "Converter/CXXH64", cSettings: [.unsafeFlags(["-O2"])]),
        .target(name: "DSV2Container", dependencies: ["DSV2Core", "DSV2Formats", "CZstd", "CXXH64"],
                path: "Converter/DSV2Container", swiftSettings: cpuFlags),
        .target(name: "DSV2Converter", dependencies: ["DSV2Core", "DSV2Formats", "DSV2Container"],
                path: "Converter/DSV2Converter", swiftSettings: cpuFlags),
        // GGUF (llama.cpp's format) in and out: a WeightSource reader and an exporter.
        .target(name: "DSV2GGUF", dependencies: ["DSV2Core", "DSV2Formats"], path: "Converter/DSV2GGUF",
                swiftSettings: cpuFlags),

        // MARK: Text, generation, analysis, the umbrella and the command line (Tools/)
        .target(name: "DSV2Text", path: "Tools/DSV2Text", swiftSettings: cpuFlags),
        .target(name: "DSV2Generation", dependencies: ["DSV2Core", "DSV2Text"], path: "Tools/DSV2Generation",
                swiftSettings: cpuFlags),
        .target(name: "DSV2Analysis", dependencies: ["DSV2Core"], path: "Tools/DSV2Analysis",
                swiftSettings: cpuFlags),
        .target(name: "DSV2",
                dependencies: ["DSV2Core", "DSV2Text", "DSV2Reference", "DSV2Formats", "DSV2Kernels", "DSV2Quantized",
                               "DSV2Container", "DSV2GGUF", "DSV2Generation"],
                path: "Tools/DSV2", swiftSettings: cpuFlags, plugins: ["BuildInfo"]),
        // Records the git commit in DSV2.BuildInfo (`dsv2 --version`), from the local repository.
        .plugin(name: "BuildInfo", capability: .buildTool(), path: "Plugins/BuildInfo"),
        // The OpenAI-compatible HTTP server (`dsv2 serve`): scheduler, endpoints, metrics.
        .target(name: "DSV2Server",
                dependencies: ["DSV2", .product(name: "Hummingbird", package: "hummingbird"),
                               .product(name: "Logging", package: "swift-log")],
                path: "Tools/DSV2Server", swiftSettings: cpuFlags),
        .target(name: "DSV2CLI",
                dependencies: ["DSV2", "DSV2Server", "DSV2Core", "DSV2Text", "DSV2Reference", "DSV2Formats", "DSV2Kernels",
                               "DSV2Quantized", "DSV2Container", "DSV2Converter", "DSV2Generation", "DSV2Analysis",
                               "DSV2GGUF", "CBLAS",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "Tools/DSV2CLI", swiftSettings: cpuFlags),
        .executableTarget(name: "dsv2", dependencies: ["DSV2CLI", "CPUCheck"], path: "Tools/dsv2",
                          resources: [.copy("Resources")], swiftSettings: cpuFlags),

        // MARK: Tests (one target per library target; every test that runs the binary is in CLITests)
        .target(name: "TestSupport", dependencies: ["DSV2Core", "DSV2Formats", "DSV2Text"], path: "Tests/TestSupport"),
        .testTarget(name: "CoreTests", dependencies: ["DSV2Core", "DSV2Reference", "TestSupport"],
                    path: "Tests/CoreTests", swiftSettings: cpuFlags),
        .testTarget(name: "TextTests", dependencies: ["DSV2Text", "TestSupport"],
                    path: "Tests/TextTests", swiftSettings: cpuFlags),
        .testTarget(name: "ReferenceTests", dependencies: ["DSV2Reference", "DSV2Core", "TestSupport"],
                    path: "Tests/ReferenceTests", swiftSettings: cpuFlags),
        .testTarget(name: "FormatsTests", dependencies: ["DSV2Formats", "TestSupport"],
                    path: "Tests/FormatsTests", swiftSettings: cpuFlags),
        .testTarget(name: "KernelsTests", dependencies: ["DSV2Kernels", "DSV2Formats", "DSV2Core", "CPUCheck", "CKernelSupport", "TestSupport"],
                    path: "Tests/KernelsTests", swiftSettings: cpuFlags),
        .testTarget(name: "QuantizedTests", dependencies: ["DSV2Quantized", "DSV2Reference", "DSV2Container", "DSV2Converter", "DSV2Formats", "DSV2Core", "TestSupport"],
                    path: "Tests/QuantizedTests", swiftSettings: cpuFlags),
        .testTarget(name: "ContainerTests", dependencies: ["DSV2Container", "DSV2Formats", "DSV2Core", "TestSupport"],
                    path: "Tests/ContainerTests", swiftSettings: cpuFlags),
        .testTarget(name: "ConverterTests", dependencies: ["DSV2Converter", "DSV2Container", "DSV2Formats", "DSV2Reference", "DSV2Core", "TestSupport"],
                    path: "Tests/ConverterTests", swiftSettings: cpuFlags),
        .testTarget(name: "GGUFTests", dependencies: ["DSV2GGUF", "DSV2Converter", "DSV2Container", "DSV2Quantized", "DSV2Formats", "DSV2Text", "DSV2Core", "TestSupport"],
                    path: "Tests/GGUFTests", swiftSettings: cpuFlags),
        .testTarget(name: "GenerationTests", dependencies: ["DSV2Generation", "DSV2Text", "DSV2Reference", "DSV2Core", "TestSupport"],
                    path: "Tests/GenerationTests", swiftSettings: cpuFlags),
        .testTarget(name: "AnalysisTests", dependencies: ["DSV2Analysis", "DSV2Reference", "DSV2Core", "TestSupport"],
                    path: "Tests/AnalysisTests", swiftSettings: cpuFlags),
        .testTarget(name: "DSV2Tests", dependencies: ["DSV2", "TestSupport"],
                    path: "Tests/DSV2Tests", swiftSettings: cpuFlags),
        .testTarget(name: "CLITests", dependencies: ["DSV2CLI", "DSV2Analysis", "DSV2Container", "DSV2Quantized", "DSV2Reference", "DSV2Text", "DSV2Core", "TestSupport"],
                    path: "Tests/CLITests", swiftSettings: cpuFlags),

        // MARK: Fuzzing: one entry per parser (scripts/fuzz), replayed over the committed corpus
        .target(name: "DSV2Fuzz", dependencies: ["DSV2Container", "DSV2GGUF", "DSV2Core", "DSV2Text"], path: "Tests/Fuzz/DSV2Fuzz",
                swiftSettings: cpuFlags),
        .testTarget(name: "FuzzTests", dependencies: ["DSV2Fuzz", "TestSupport"], path: "Tests/FuzzTests",
                    swiftSettings: cpuFlags),
    ] + fuzzExecutable + serverTests,
    swiftLanguageModes: [.v5]
)
