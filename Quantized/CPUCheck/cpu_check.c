// Compiled without -march (Package.swift), so it runs on any x86-64 CPU. See CPUCheck.h.
#include "CPUCheck.h"
#include "CKernelSupport.h"
#include <stdio.h>
#include <unistd.h>

uint64_t dsv2_cpu_required(void) {
    return DSV2_CPU_AVX2 | DSV2_CPU_FMA | DSV2_CPU_F16C | DSV2_CPU_BMI1 | DSV2_CPU_BMI2 | DSV2_CPU_LZCNT
         | DSV2_CPU_MOVBE | DSV2_CPU_OS_AVX;
}

uint64_t dsv2_cpu_missing(uint64_t features, char *message, size_t size) {
    uint64_t missing = dsv2_cpu_required() & ~features;
    if (missing == 0 || size == 0) return missing;
    size_t used = (size_t)snprintf(message, size, "this CPU lacks");
    const char *separator = " ";
    for (int i = 0; i < DSV2_CPU_FEATURE_COUNT; i++) {
        uint64_t bit = (uint64_t)1 << i;
        if (!(missing & bit) || used >= size) continue;
        used += (size_t)snprintf(message + used, size - used, "%s%s%s", separator, dsv2_cpu_feature_name(i),
                                 bit == DSV2_CPU_OS_AVX ? " (the operating system does not enable the AVX registers)" : "");
        separator = ", ";
    }
    if (used < size) {
        snprintf(message + used, size - used,
                 ", which this build of dsv2 requires (x86-64-v3: AVX2, FMA, F16C, BMI1/2, LZCNT, MOVBE). "
                 "Build with DSV2_PORTABLE=1 for a slower build that runs on any CPU.");
    }
    return missing;
}

#if defined(__x86_64__) && !defined(DSV2_PORTABLE)
__attribute__((constructor)) static void dsv2_refuse_unsupported_cpu(void) {
    char message[512];
    if (dsv2_cpu_missing(dsv2_cpu_features(), message, sizeof message) == 0) return;
    fprintf(stderr, "dsv2: %s\n", message);
    _exit(1);
}
#endif
