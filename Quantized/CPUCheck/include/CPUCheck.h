// The refusal of a CPU that cannot run this build. Everything but this target (and the feature
// query in CKernelSupport) is compiled for x86-64-v3, so the compiler may have put AVX2, FMA,
// F16C, BMI or MOVBE instructions anywhere, and such a CPU would die with SIGILL at an
// arbitrary point. This target is compiled without -march; a constructor in it runs before
// main (before any Swift code) in every binary that links it (the dsv2 executable) and exits 1
// with the list of what is missing.
#ifndef DSV2_CPUCHECK_H
#define DSV2_CPUCHECK_H

#include <stddef.h>
#include <stdint.h>

/// The features (CKernelSupport's DSV2_CPU_* bits) an x86-64-v3 build needs.
uint64_t dsv2_cpu_required(void);

/// The decision, pure: the required features missing from `features` (0: the CPU can run the
/// build). Writes the refusal message (names of the missing features) into `message` (at most
/// `size` bytes, NUL-terminated) when something is missing.
uint64_t dsv2_cpu_missing(uint64_t features, char *message, size_t size);

#endif
