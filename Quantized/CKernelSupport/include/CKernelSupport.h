// Tiny C helpers for the Swift kernels and the worker pool: things Swift has no spelling for
// (prefetch, the spin-wait hint, CPU feature checks; atomics come from Swift's Synchronization).
// Everything here is `static inline` so that it inlines into the Swift callers (one instruction
// each); scripts/check-codegen verifies that no call remains in the kernels.
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

/// Run-time CPU feature checks, so a binary built for x86-64-v3 can refuse clearly instead of
/// dying with SIGILL, and optional AVX-512 / AVX-VNNI paths can be chosen safely.
int dsv2_cpu_has_avx2_fma_f16c(void);
int dsv2_cpu_has_avx512bw(void);
/// AVX-VNNI (ymm vpdpbusd, CPUID.(7,1):EAX[4]) and AVX2: the DSV2KernelsVNNI row dots may run.
int dsv2_cpu_has_avx_vnni(void);

#endif
