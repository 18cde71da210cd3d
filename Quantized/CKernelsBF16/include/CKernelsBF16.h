// The attention products over a bf16 latent cache with AVX-512 BF16 (vdpbf16ps), in C because
// Swift cannot import the intrinsics' bf16 vector types. The only code built with
// -mavx512bf16: DSV2Kernels calls in only after a run-time CPU check (KernelTable), and the
// functions are not inline, so none of it ends up in a module built without the feature.
#ifndef DSV2_CKERNELSBF16_H
#define DSV2_CKERNELSBF16_H

#include <stdint.h>

/// Whether this build has the kernels (x86-64, not a portable build).
int dsv2_bf16_kernels_compiled(void);

/// s[j·lanes + h] = Σ_c qT[c·lanes + h] · row_j[c] for j < count, h < lanes (a multiple of 16),
/// rows of `width` bf16 values at rows + j·rowBytes. The query is rounded to bf16 (pairs of
/// columns per head, in `scratch`: (width + 1) / 2 × lanes floats) and each vdpbf16ps adds
/// the products of two columns to a float accumulator per head.
void dsv2_bf16_scores(const float *qT, long lanes, const void *rows, long rowBytes, long count, long width,
                      float *scratch, float *s);

/// ctx[h·rank + c] += Σ_j p[j·lanes + h] · row_j[c] for h < heads, c < rank, j < count: the
/// weights rounded to bf16 (pairs of rows per head, in `scratch`: (count + 1) / 2 × lanes
/// floats), two rows per vdpbf16ps.
void dsv2_bf16_weighted_sum(const float *p, long lanes, long heads, const void *rows, long rowBytes, long count, long rank,
                            float *scratch, float *ctx);

#endif
