// swift-tools-version:6.0
// An example of dsv2 as a library: open a model, stream a continuation. It depends on the dsv2
// package of this repository by path (in another project: .package(url: …, from: …)).
import PackageDescription

let package = Package(
    name: "Generate",
    dependencies: [
        .package(name: "dsv2", path: "../.."),
    ],
    targets: [
        .executableTarget(name: "generate-example", dependencies: [.product(name: "DSV2", package: "dsv2")],
                          path: "Sources/Generate"),
    ],
    swiftLanguageModes: [.v5]
)
