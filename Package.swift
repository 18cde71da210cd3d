// swift-tools-version:6.0
// dsv2: DeepSeek-V2 on an ordinary CPU.
//
// Layout: Reference/ (fp32 oracle), Quantized/ (fast engine), Converter/ (container + convert),
// Tools/ (the `dsv2` command line), Tests/. Each folder holds its Swift target and, where it
// needs one, a small C/system-library shim.
import PackageDescription

// The kernels are written for x86-64-v3 (AVX2, FMA, F16C). Without this flag swiftc targets
// baseline x86-64 and every `addProduct` / Float16 conversion becomes a library call (12x slower).
// It changes Swift code generation too, not only C (see docs/KERNELS.md in shared notes).
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-Xcc", "-march=x86-64-v3"])]

let package = Package(
    name: "dsv2",
    products: [
        .library(name: "DSV2Reference", targets: ["DSV2Reference"]),
        .library(name: "DSV2Quantized", targets: ["DSV2Quantized"]),
        .library(name: "DSV2Converter", targets: ["DSV2Converter"]),
        .executable(name: "dsv2", targets: ["dsv2"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        // MARK: System libraries
        .systemLibrary(name: "CBLAS", path: "Reference/CBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev", "pkgconf"])]),
        .systemLibrary(name: "CZstd", path: "Converter/CZstd", pkgConfig: "libzstd",
                       providers: [.apt(["libzstd-dev", "pkgconf"])]),

        // MARK: Reference engine (fp32 oracle; never depends on the quantized engine)
        .target(name: "DSV2Reference", dependencies: ["CBLAS"], path: "Reference/DSV2Reference",
                swiftSettings: cpuFlags),

        // MARK: Quantized engine
        .target(name: "CKernelSupport", path: "Quantized/CKernelSupport",
                cSettings: [.unsafeFlags(["-march=x86-64-v3", "-O3"])]),
        // The AVX-VNNI row dots, alone in a module compiled with -mavxvnni (Swift takes its LLVM
        // target features from the clang importer options): LLVM may emit VNNI only here, and
        // DSV2Quantized calls in only after a run-time CPU check. Never add -mavxvnni to
        // DSV2Quantized itself: VNNI could then appear anywhere and SIGILL on older CPUs.
        .target(name: "DSV2KernelsVNNI", dependencies: ["CKernelSupport"], path: "Quantized/KernelsVNNI",
                swiftSettings: [.unsafeFlags(["-Xcc", "-march=x86-64-v3", "-Xcc", "-mavxvnni"]),
                                .unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),
        .target(name: "DSV2Quantized", dependencies: ["DSV2Reference", "CKernelSupport", "DSV2KernelsVNNI"],
                path: "Quantized/DSV2Quantized",
                swiftSettings: cpuFlags + [.unsafeFlags(["-Ounchecked"], .when(configuration: .release))]),

        // MARK: Converter and container
        .target(name: "DSV2Converter", dependencies: ["DSV2Reference", "DSV2Quantized", "CZstd"],
                path: "Converter/DSV2Converter", swiftSettings: cpuFlags),

        // MARK: Command line
        .target(name: "DSV2CLI",
                dependencies: ["DSV2Reference", "DSV2Quantized", "DSV2Converter",
                               .product(name: "ArgumentParser", package: "swift-argument-parser")],
                path: "Tools/DSV2CLI", swiftSettings: cpuFlags),
        .executableTarget(name: "dsv2", dependencies: ["DSV2CLI"], path: "Tools/dsv2",
                          resources: [.copy("Resources")], swiftSettings: cpuFlags),

        // MARK: Tests
        .target(name: "TestSupport", dependencies: ["DSV2Reference"], path: "Tests/TestSupport"),
        .testTarget(name: "ReferenceTests", dependencies: ["DSV2Reference", "TestSupport"],
                    path: "Tests/ReferenceTests", swiftSettings: cpuFlags),
        .testTarget(name: "TokenizerTests", dependencies: ["DSV2Reference", "TestSupport"],
                    path: "Tests/TokenizerTests", swiftSettings: cpuFlags),
        .testTarget(name: "QuantizedTests",
                    dependencies: ["DSV2Quantized", "DSV2Converter", "DSV2Reference", "TestSupport"],
                    path: "Tests/QuantizedTests", swiftSettings: cpuFlags),
        .testTarget(name: "ConverterTests",
                    dependencies: ["DSV2Converter", "DSV2Quantized", "DSV2Reference", "TestSupport"],
                    path: "Tests/ConverterTests", swiftSettings: cpuFlags),
        .testTarget(name: "CLITests", dependencies: ["DSV2CLI", "TestSupport"],
                    path: "Tests/CLITests", swiftSettings: cpuFlags),
    ],
    swiftLanguageModes: [.v5]
)
