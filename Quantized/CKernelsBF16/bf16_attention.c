// See CKernelsBF16.h. vdpbf16ps adds a[2i+1]·b[2i+1] and then a[2i]·b[2i] to float lane i (each
// product of two bf16 values is exact in fp32, each addition rounds to nearest even).
#include "CKernelsBF16.h"

#if defined(__x86_64__) && defined(__AVX512BF16__) && !defined(DSV2_PORTABLE)
#include <immintrin.h>

int dsv2_bf16_kernels_compiled(void) { return 1; }

/// Word 2h of the result from word h of the low half, word 2h + 1 from word h of the high half:
/// the bf16 of two 16-float vectors a, b (converted as one vector, a low) as 16 (a_h, b_h) pairs.
static inline __m512i pair_index(void) {
    return _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8,
                            23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
}

/// Pairs (x[2k][h], x[2k + 1][h]) as bf16 for k < (count + 1) / 2, h < lanes, from float rows of
/// `lanes` values (a missing last odd row is 0).
static void pair_rows(const float *x, long lanes, long count, uint32_t *pairs) {
    const __m512i index = pair_index();
    for (long k = 0; 2 * k < count; k++) {
        for (long g = 0; g < lanes; g += 16) {
            __m512 a = _mm512_loadu_ps(x + 2 * k * lanes + g);
            __m512 b = 2 * k + 1 < count ? _mm512_loadu_ps(x + (2 * k + 1) * lanes + g) : _mm512_setzero_ps();
            __m512i both = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_storeu_si512(pairs + k * lanes + g, _mm512_permutexvar_epi16(index, both));
        }
    }
}

/// Two bf16 columns of a row as one 32-bit word (the second 0 past an odd width).
static inline uint32_t column_pair(const uint16_t *row, long c, long width) {
    return c + 1 < width ? *(const uint32_t *)(row + c) : row[c];
}

void dsv2_bf16_scores(const float *qT, long lanes, const void *rows, long rowBytes, long count, long width,
                      float *scratch, float *s) {
    uint32_t *q = (uint32_t *)scratch;
    long pairs = (width + 1) / 2;
    pair_rows(qT, lanes, width, q);
    const char *base = (const char *)rows;
    for (long j = 0; j < count; j += 8) {
        long n = count - j < 8 ? count - j : 8;
        const uint16_t *r[8];
        for (int i = 0; i < 8; i++) r[i] = (const uint16_t *)(base + (j + (i < n ? i : n - 1)) * rowBytes);
        for (long g = 0; g < lanes; g += 16) {
            __m512 a[8];
            for (int i = 0; i < 8; i++) a[i] = _mm512_setzero_ps();
            for (long k = 0; k < pairs; k++) {
                __m512bh qv = (__m512bh)_mm512_loadu_si512(q + k * lanes + g);
                for (int i = 0; i < 8; i++)
                    a[i] = _mm512_dpbf16_ps(a[i], qv, (__m512bh)_mm512_set1_epi32((int)column_pair(r[i], 2 * k, width)));
            }
            for (int i = 0; i < n; i++) _mm512_storeu_ps(s + (j + i) * lanes + g, a[i]);
        }
    }
}

/// Rows j, j + 1 (`r1` NULL: zeros) at columns c ..< c + 32 (`mask` selects the columns that
/// exist) interleaved as (row j, row j + 1) pairs: columns c ..< c + 16 in `low`, the rest in `high`.
static inline void interleave(const uint16_t *r0, const uint16_t *r1, __mmask32 mask, __m512i *low, __m512i *high) {
    const __m512i lowIndex = _mm512_set_epi16(47, 15, 46, 14, 45, 13, 44, 12, 43, 11, 42, 10, 41, 9, 40, 8,
                                              39, 7, 38, 6, 37, 5, 36, 4, 35, 3, 34, 2, 33, 1, 32, 0);
    const __m512i highIndex = _mm512_set_epi16(63, 31, 62, 30, 61, 29, 60, 28, 59, 27, 58, 26, 57, 25, 56, 24,
                                               55, 23, 54, 22, 53, 21, 52, 20, 51, 19, 50, 18, 49, 17, 48, 16);
    __m512i a = _mm512_maskz_loadu_epi16(mask, r0);
    __m512i b = r1 ? _mm512_maskz_loadu_epi16(mask, r1) : _mm512_setzero_si512();
    *low = _mm512_permutex2var_epi16(a, lowIndex, b);
    *high = _mm512_permutex2var_epi16(a, highIndex, b);
}

void dsv2_bf16_weighted_sum(const float *p, long lanes, long heads, const void *rows, long rowBytes, long count, long rank,
                            float *scratch, float *ctx) {
    uint32_t *w = (uint32_t *)scratch;
    pair_rows(p, lanes, count, w);
    const char *base = (const char *)rows;
    for (long h = 0; h < heads; h += 8) {
        long n = heads - h < 8 ? heads - h : 8;
        for (long c = 0; c < rank; c += 32) {
            long columns = rank - c < 32 ? rank - c : 32;
            __mmask32 mask = columns == 32 ? 0xFFFFFFFFu : ((1u << columns) - 1);
            __mmask16 lowMask = (__mmask16)mask, highMask = (__mmask16)(mask >> 16);
            __m512 a[16];
            for (int k = 0; k < 8; k++) {
                a[2 * k] = k < n ? _mm512_maskz_loadu_ps(lowMask, ctx + (h + k) * rank + c) : _mm512_setzero_ps();
                a[2 * k + 1] = k < n ? _mm512_maskz_loadu_ps(highMask, ctx + (h + k) * rank + c + 16) : _mm512_setzero_ps();
            }
            for (long j = 0; j < count; j += 2) {
                const uint16_t *r0 = (const uint16_t *)(base + j * rowBytes) + c;
                const uint16_t *r1 = j + 1 < count ? (const uint16_t *)(base + (j + 1) * rowBytes) + c : 0;
                __m512i low, high;
                interleave(r0, r1, mask, &low, &high);
                const uint32_t *pair = w + (j / 2) * lanes + h;
                for (int k = 0; k < 8; k++) {
                    __m512bh weight = (__m512bh)_mm512_set1_epi32((int)pair[k]);
                    a[2 * k] = _mm512_dpbf16_ps(a[2 * k], (__m512bh)low, weight);
                    a[2 * k + 1] = _mm512_dpbf16_ps(a[2 * k + 1], (__m512bh)high, weight);
                }
            }
            for (int k = 0; k < n; k++) {
                _mm512_mask_storeu_ps(ctx + (h + k) * rank + c, lowMask, a[2 * k]);
                _mm512_mask_storeu_ps(ctx + (h + k) * rank + c + 16, highMask, a[2 * k + 1]);
            }
        }
    }
}

#else

int dsv2_bf16_kernels_compiled(void) { return 0; }

void dsv2_bf16_scores(const float *qT, long lanes, const void *rows, long rowBytes, long count, long width,
                      float *scratch, float *s) {
    (void)qT; (void)lanes; (void)rows; (void)rowBytes; (void)count; (void)width; (void)scratch; (void)s;
    __builtin_trap();
}

void dsv2_bf16_weighted_sum(const float *p, long lanes, long heads, const void *rows, long rowBytes, long count, long rank,
                            float *scratch, float *ctx) {
    (void)p; (void)lanes; (void)heads; (void)rows; (void)rowBytes; (void)count; (void)rank; (void)scratch; (void)ctx;
    __builtin_trap();
}

#endif
