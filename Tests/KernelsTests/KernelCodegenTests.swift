import XCTest
import Foundation
import TestSupport

/// Runs scripts/check-codegen on the release objects, so CI notices when the kernels lose their
/// vector code (a missing target flag or a non-inlined standard-library SIMD conversion makes
/// them 10–300× slower while every functional test still passes), or when an AVX-512 / VNNI
/// instruction escapes the module that may contain it (SIGILL on CPUs without it).
final class KernelCodegenTests: XCTestCase {
    func testKernelsCompileToVectorCodeWithoutLibraryCalls() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let script = root.appendingPathComponent("scripts/check-codegen").path
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/objdump")
                || FileManager.default.isExecutableFile(atPath: "/usr/local/bin/objdump") else {
            throw XCTSkip("objdump not installed: code generation not checked")
        }
        #if DEBUG
        throw XCTSkip("debug build: code generation is checked on release builds only (swift test -c release)")
        #elseif DSV2_PORTABLE || !arch(x86_64)
        throw XCTSkip("portable build: no x86-64 kernels to check")
        #else
        let objects = root.appendingPathComponent(".build/release/DSV2Kernels.build/RowDot.swift.o").path
        guard FileManager.default.fileExists(atPath: objects) else {
            throw XCTSkip("no release objects at \(objects): code generation not checked")
        }
        let result = try DSV2Process.run([script], program: URL(fileURLWithPath: "/bin/bash"))
        XCTAssertEqual(result.status, 0, result.stdout + result.stderr)
        #endif
    }
}
