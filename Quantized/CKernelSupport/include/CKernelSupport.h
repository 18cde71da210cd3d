// Tiny C helpers for the Swift kernels and the worker pool, for what Swift has no spelling of:
// software prefetch, the spin-wait hint, and the CPU feature query. The inline helpers inline
// into the Swift callers (one instruction each; scripts/check-codegen verifies that no call
// remains in the kernels). cpu.c is compiled without -march, so the feature query runs on any
// x86-64 CPU. (Atomics come from Swift's Synchronization module.)
#ifndef DSV2_CKERNELSUPPORT_H
#define DSV2_CKERNELSUPPORT_H

#include <stdint.h>

/// Software prefetch into all cache levels. Swift has no prefetch API; this inlines to one
/// instruction. Prefetching ~4 KiB ahead was the largest single gain for weights from DRAM.
static inline void dsv2_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

/// Spin-wait hint (PAUSE on x86): lets the sibling hyper-thread run and saves power while a
/// pool worker waits for the next parallel region.
static inline void dsv2_cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/// CPU features, as bits of the mask `dsv2_cpu_features` returns. The first eight are what
/// -march=x86-64-v3 lets the compiler use anywhere (besides the SSE levels every AVX2 CPU has);
/// the OS_* bits say that the operating system saves the wider registers (XCR0), without which
/// the instructions fault even where CPUID lists them.
enum {
    DSV2_CPU_AVX2 = 1 << 0,
    DSV2_CPU_FMA = 1 << 1,
    DSV2_CPU_F16C = 1 << 2,
    DSV2_CPU_BMI1 = 1 << 3,
    DSV2_CPU_BMI2 = 1 << 4,
    DSV2_CPU_LZCNT = 1 << 5,
    DSV2_CPU_MOVBE = 1 << 6,
    DSV2_CPU_OS_AVX = 1 << 7,          // XCR0: SSE and AVX (ymm) state
    DSV2_CPU_AVX512F = 1 << 8,
    DSV2_CPU_AVX512BW = 1 << 9,
    DSV2_CPU_AVX512VL = 1 << 10,
    DSV2_CPU_AVX512_VNNI = 1 << 11,
    DSV2_CPU_OS_AVX512 = 1 << 12,      // XCR0: opmask and zmm state
    DSV2_CPU_AVX_VNNI = 1 << 13,       // the VEX form of vpdpbusd
    DSV2_CPU_AVX512_BF16 = 1 << 14,    // vdpbf16ps, vcvtne2ps2bf16
    DSV2_CPU_FEATURE_COUNT = 15
};

/// The features of this CPU (0 on other architectures), minus those named in the environment
/// variable DSV2_CPU_IGNORE (comma-separated `dsv2_cpu_feature_name`s, e.g. `avx512_vnni` to run
/// the AVX2 kernels on a CPU that has AVX-512 VNNI, or `avx2` to see the refusal of an older CPU).
uint64_t dsv2_cpu_features(void);

/// The name of feature bit `1 << index` as Linux's /proc/cpuinfo spells it (`os_avx` and
/// `os_avx512` for the XCR0 bits), or NULL when `index` is out of range.
const char *dsv2_cpu_feature_name(int index);

#endif
