import XCTest
import CKernelSupport
import CPUCheck
@testable import DSV2Kernels

/// The refusal of a CPU that cannot run the x86-64-v3 build (the constructor in Quantized/CPUCheck):
/// its decision function on fake feature sets, and the feature query on this machine.
final class CPUCheckTests: XCTestCase {
    let v3 = dsv2_cpu_required()

    /// The decision and its message for `features`.
    func refusal(_ features: UInt64) -> (missing: UInt64, message: String) {
        var buffer = [CChar](repeating: 0, count: 512)
        let missing = dsv2_cpu_missing(features, &buffer, buffer.count)
        return (missing, String(cString: buffer))
    }

    func testAnX86_64_v3CPUIsAccepted() {
        XCTAssertEqual(refusal(v3).missing, 0)
        let withAVX512 = v3 | UInt64(DSV2_CPU_AVX512F | DSV2_CPU_AVX512BW | DSV2_CPU_AVX512VL | DSV2_CPU_AVX512_VNNI)
        XCTAssertEqual(refusal(withAVX512).missing, 0, "extra features change nothing")
    }

    func testAnOlderCPUIsRefusedWithWhatItLacks() {
        // A Sandy Bridge: AVX (and the OS's ymm state), no AVX2, FMA, F16C, BMI, LZCNT, MOVBE.
        let (missing, message) = refusal(UInt64(DSV2_CPU_OS_AVX))
        XCTAssertEqual(missing, v3 & ~UInt64(DSV2_CPU_OS_AVX))
        XCTAssertTrue(message.hasPrefix("this CPU lacks avx2, fma, f16c, bmi1, bmi2, lzcnt, movbe,"), message)
        XCTAssertTrue(message.contains("DSV2_PORTABLE=1"), "the message says how to build for this CPU: \(message)")
        // Only FMA missing (an AVX2 CPU without FMA does not exist, but each bit counts alone).
        let onlyFMA = refusal(v3 & ~UInt64(DSV2_CPU_FMA))
        XCTAssertEqual(onlyFMA.missing, UInt64(DSV2_CPU_FMA))
        XCTAssertTrue(onlyFMA.message.hasPrefix("this CPU lacks fma, which"), onlyFMA.message)
        // An OS that does not save the ymm registers: AVX instructions fault even on an AVX2 CPU.
        let noOS = refusal(v3 & ~UInt64(DSV2_CPU_OS_AVX))
        XCTAssertEqual(noOS.missing, UInt64(DSV2_CPU_OS_AVX))
        XCTAssertTrue(noOS.message.contains("operating system does not enable the AVX registers"), noOS.message)
        XCTAssertNotEqual(refusal(0).missing, 0, "no feature at all")
    }

    func testThisMachineRunsTheBuild() {
        #if arch(x86_64) && !DSV2_PORTABLE
        // The test binary links the constructor: had it refused, no test would run. Check the
        // query itself too, unless DSV2_CPU_IGNORE masks features on purpose.
        if getenv("DSV2_CPU_IGNORE") == nil {
            XCTAssertEqual(refusal(dsv2_cpu_features()).missing, 0, "features: \(CPUFeatures.current)")
        }
        #endif
    }

    func testFeatureNames() {
        XCTAssertEqual(CPUFeatures([.avx2, .fma, .avx512VNNI]).description, "avx2,fma,avx512_vnni")
        XCTAssertNil(dsv2_cpu_feature_name(Int32(DSV2_CPU_FEATURE_COUNT)))
    }
}
