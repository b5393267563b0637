/* What bf16.c (conversions, GEMMs, element-wise ops) and bf16_attn.c (attention) share:
 * the AVX-512 target, fp32 -> bf16 rounding in scalar and vector code, the polynomial exp
 * and tail masks. Internal to kernels/cpu; the contract is bf16.h's. Inline here so each
 * file compiles the same instructions it did as one file (the bits do not move). */
#ifndef XFFL_KERNELS_CPU_BF16_SIMD_H
#define XFFL_KERNELS_CPU_BF16_SIMD_H

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "kernels/cpu/bf16.h"

#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

/* 1 when this CPU has the AVX-512 BF16 conversion instructions (cached) */
int kcpu_bf16_cvt_ok(void);

/* ---- fp32 -> bf16, round to nearest even ------------------------------------------
 * VCVTNEPS2BF16 treats denormal inputs as zero and flushes denormal results; the
 * scalar path does the same so both give the same bits. */
static inline kcpu_bf16_t to_bf16_scalar(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (kcpu_bf16_t)((u >> 16) | 0x40u); /* quiet NaN */
    if ((u & 0x7f800000u) == 0) return (kcpu_bf16_t)((u >> 16) & 0x8000u);       /* zero, denormal */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (kcpu_bf16_t)(u >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static inline void to_bf16_avx512(kcpu_bf16_t *dst,
                                                                                                 const float *src,
                                                                                                 int64_t n)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i + 16 <= n; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)v);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, src + i));
        _mm256_mask_storeu_epi16(dst + i, k, (__m256i)v);
    }
}

/* e^x for x in [-87, 88]: x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor (rel. error
 * < 2e-7, about 2 ulp), times 2^n */
AVX512 static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tailmask(int64_t left) { return (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1); }

#endif
