#include "CKernelSupport.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif

int dsv2_cpu_has_avx2_fma_f16c(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

int dsv2_cpu_has_avx512bw(void) {
#if defined(__x86_64__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw");
#else
    return 0;
#endif
}

int dsv2_cpu_has_avx_vnni(void) {
#if defined(__x86_64__)
    // AVX-VNNI (VEX-encoded vpdpbusd on ymm): CPUID leaf 7 subleaf 1, EAX bit 4. The AVX2 check
    // first also confirms that the OS saves the ymm state (OSXSAVE/XCR0).
    if (!dsv2_cpu_has_avx2_fma_f16c()) return 0;
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) return 0;
    return (eax >> 4) & 1;
#else
    return 0;
#endif
}
