// The CPU feature query. Compiled without -march (Package.swift): it must run, and answer, on
// a CPU that lacks the features the rest of the build assumes.
#include "CKernelSupport.h"
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

static const char *const names[DSV2_CPU_FEATURE_COUNT] = {
    "avx2", "fma", "f16c", "bmi1", "bmi2", "lzcnt", "movbe", "os_avx",
    "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "os_avx512", "avx_vnni", "avx512_bf16",
};

const char *dsv2_cpu_feature_name(int index) {
    return index >= 0 && index < DSV2_CPU_FEATURE_COUNT ? names[index] : NULL;
}

#if defined(__x86_64__)
static uint64_t cpuid_features(void) {
    unsigned int eax, ebx, ecx, edx, maxLeaf = __get_cpuid_max(0, NULL);
    uint64_t f = 0;
    if (maxLeaf < 1 || !__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return 0;
    if (ecx & (1u << 12)) f |= DSV2_CPU_FMA;
    if (ecx & (1u << 22)) f |= DSV2_CPU_MOVBE;
    if (ecx & (1u << 29)) f |= DSV2_CPU_F16C;
    // XGETBV exists only when the OS has set CR4.OSXSAVE (CPUID.1:ECX bit 27); it reports which
    // register states the OS saves on a context switch.
    if ((ecx & (1u << 27)) && (ecx & (1u << 28))) {
        unsigned int xcr0, xcr0High;
        __asm__ __volatile__("xgetbv" : "=a"(xcr0), "=d"(xcr0High) : "c"(0));
        if ((xcr0 & 0x6) == 0x6) f |= DSV2_CPU_OS_AVX;                 // SSE, AVX
        if ((xcr0 & 0xE6) == 0xE6) f |= DSV2_CPU_OS_AVX512;            // + opmask, zmm0-15 high, zmm16-31
    }
    if (maxLeaf >= 7 && __get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) {
        if (ebx & (1u << 3)) f |= DSV2_CPU_BMI1;
        if (ebx & (1u << 5)) f |= DSV2_CPU_AVX2;
        if (ebx & (1u << 8)) f |= DSV2_CPU_BMI2;
        if (ebx & (1u << 16)) f |= DSV2_CPU_AVX512F;
        if (ebx & (1u << 30)) f |= DSV2_CPU_AVX512BW;
        if (ebx & (1u << 31)) f |= DSV2_CPU_AVX512VL;
        if (ecx & (1u << 11)) f |= DSV2_CPU_AVX512_VNNI;
        if (eax >= 1 && __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx)) {
            if (eax & (1u << 4)) f |= DSV2_CPU_AVX_VNNI;
            if (eax & (1u << 5)) f |= DSV2_CPU_AVX512_BF16;
        }
    }
    if (__get_cpuid_max(0x80000000, NULL) >= 0x80000001 && __get_cpuid(0x80000001, &eax, &ebx, &ecx, &edx)
        && (ecx & (1u << 5))) f |= DSV2_CPU_LZCNT;
    return f;
}
#endif

/// The bits named in `list` (comma-separated feature names; unknown names are ignored).
static uint64_t named_features(const char *list) {
    uint64_t f = 0;
    while (list && *list) {
        size_t length = strcspn(list, ",");
        for (int i = 0; i < DSV2_CPU_FEATURE_COUNT; i++) {
            if (strlen(names[i]) == length && strncmp(names[i], list, length) == 0) f |= (uint64_t)1 << i;
        }
        list += length;
        if (*list == ',') list++;
    }
    return f;
}

uint64_t dsv2_cpu_features(void) {
#if defined(__x86_64__)
    return cpuid_features() & ~named_features(getenv("DSV2_CPU_IGNORE"));
#else
    return 0;
#endif
}
