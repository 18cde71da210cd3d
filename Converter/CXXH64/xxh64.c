// In C rather than Swift because of what the compilers make of the four accumulator chains
// (each round: multiply, add, rotate, multiply). Swift builds with -march=x86-64-v3, and there
// LLVM either packs the four lanes into one AVX2 register with 64-bit multiplies emulated by
// three vpmuludq each, or, with that turned off, rotates with rorx: 10 and 14 GB/s per core on
// this project's EPYC VM, against 23 GB/s for this file compiled without -march (rol, scalar
// multiplies), which keeps pace with a page-cache read from memory.
#include "CXXH64.h"
#include <string.h>

#define PRIME64_1 0x9E3779B185EBCA87ULL
#define PRIME64_2 0xC2B2AE3D27D4EB4FULL

static inline uint64_t read64(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}

static inline uint64_t round64(uint64_t acc, uint64_t input) {
    acc += input * PRIME64_2;
    acc = (acc << 31) | (acc >> 33);
    acc *= PRIME64_1;
    // An empty asm that claims to change acc: keeps the compiler from vectorizing the lanes
    // (slower, as above), as xxHash itself does.
    __asm__("" : "+r"(acc));
    return acc;
}

void dsv2_xxh64_stripes(uint64_t acc[4], const void *data, size_t stripes) {
    const unsigned char *p = (const unsigned char *)data;
    uint64_t v1 = acc[0], v2 = acc[1], v3 = acc[2], v4 = acc[3];
    for (size_t i = 0; i < stripes; i++, p += 32) {
        v1 = round64(v1, read64(p));
        v2 = round64(v2, read64(p + 8));
        v3 = round64(v3, read64(p + 16));
        v4 = round64(v4, read64(p + 24));
    }
    acc[0] = v1; acc[1] = v2; acc[2] = v3; acc[3] = v4;
}
