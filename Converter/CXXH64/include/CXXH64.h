// XXH64's inner loop (the container checksum, Converter/DSV2Container/XXH64.swift) in C.
#ifndef DSV2_CXXH64_H
#define DSV2_CXXH64_H

#include <stddef.h>
#include <stdint.h>

/// Runs XXH64's round over `stripes` 32-byte stripes at `data`, one 8-byte word per
/// accumulator `acc[0...3]` per stripe (xxHash's doc/xxhash_spec.md, step 2).
void dsv2_xxh64_stripes(uint64_t acc[4], const void *data, size_t stripes);

#endif
