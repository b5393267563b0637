/* MD5 block functions: the scalar reference and four SSE2 lanes (md5x4.h says why). */
#include "storage/md5x4.h"

#include <string.h>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

/* K[i] = floor(2^32 * |sin(i + 1)|), the per-step rotations, and which message word each
 * step reads (RFC 1321, section 3.4) */
static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391};
static const int R[4][4] = {{7, 12, 17, 22}, {5, 9, 14, 20}, {4, 11, 16, 23}, {6, 10, 15, 21}};

/* which message word step i reads: i, then 5i+1, 3i+5 and 7i (mod 16) by round */
static const uint8_t W[64] = {0, 1, 2,  3,  4,  5,  6,  7,  8,  9,  10, 11, 12, 13, 14, 15,
                              1, 6, 11, 0,  5,  10, 15, 4,  9,  14, 3,  8,  13, 2,  7,  12,
                              5, 8, 11, 14, 1,  4,  7,  10, 13, 0,  3,  6,  9,  12, 15, 2,
                              0, 7, 14, 5,  12, 3,  10, 1,  8,  15, 6,  13, 4,  11, 2,  9};

void md5_init(md5_state *s)
{
    s->h[0] = 0x67452301;
    s->h[1] = 0xefcdab89;
    s->h[2] = 0x98badcfe;
    s->h[3] = 0x10325476;
}

static uint32_t le32(const uint8_t *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }

void md5_blocks(md5_state *s, const uint8_t *p, size_t n)
{
    for (; n; n--, p += MD5_BLOCK) {
        uint32_t m[16], a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3];
        for (int i = 0; i < 16; i++) m[i] = le32(p + 4 * i);
        for (int i = 0; i < 64; i++) {
            uint32_t f;
            switch (i >> 4) {
            case 0: f = d ^ (b & (c ^ d)); break; /* F = (b & c) | (~b & d) */
            case 1: f = c ^ (d & (b ^ c)); break; /* G = (b & d) | (c & ~d) */
            case 2: f = b ^ c ^ d; break;         /* H */
            default: f = c ^ (b | ~d); break;     /* I */
            }
            int r = R[i >> 4][i & 3];
            uint32_t x = a + f + K[i] + m[W[i]];
            a = d;
            d = c;
            c = b;
            b = b + (x << r | x >> (32 - r));
        }
        s->h[0] += a;
        s->h[1] += b;
        s->h[2] += c;
        s->h[3] += d;
    }
}

#if defined(__x86_64__)
/* lane j of m[0..3] = p[j]'s 32-bit words w..w+3 of a block (off = 4w): a 4x4 transpose.
 * A macro, so that it is compiled into each variant with that variant's instructions. */
#define LOAD4(m, p, off)                                                                            \
    do {                                                                                            \
        __m128i r0 = _mm_loadu_si128((const __m128i *)(p[0] + off));                               \
        __m128i r1 = _mm_loadu_si128((const __m128i *)(p[1] + off));                               \
        __m128i r2 = _mm_loadu_si128((const __m128i *)(p[2] + off));                               \
        __m128i r3 = _mm_loadu_si128((const __m128i *)(p[3] + off));                               \
        __m128i t0 = _mm_unpacklo_epi32(r0, r1), t1 = _mm_unpacklo_epi32(r2, r3);                  \
        __m128i t2 = _mm_unpackhi_epi32(r0, r1), t3 = _mm_unpackhi_epi32(r2, r3);                  \
        (m)[0] = _mm_unpacklo_epi64(t0, t1);                                                        \
        (m)[1] = _mm_unpackhi_epi64(t0, t1);                                                        \
        (m)[2] = _mm_unpacklo_epi64(t2, t3);                                                        \
        (m)[3] = _mm_unpackhi_epi64(t2, t3);                                                        \
    } while (0)

/* x = a + K + m is taken first: it does not wait for the step before. GCC reassociates
 * (a + mk) + f into (f + a) + mk, one more add on the chain of dependent steps (~18 %
 * slower); an empty asm that "changes" x keeps the sum as written. */
#define KEEP_FIRST(x) __asm__("" : "+x"(x))
/* One step of round ROUND (0-3) with rotation S, i its index: the scalar step above on
 * four lanes. */
#define STEP_SSE2(ROUND, i, a, b, c, d, S)                                                          \
    do {                                                                                            \
        __m128i x = _mm_add_epi32(a, mk[i]), f;                                                     \
        KEEP_FIRST(x);                                                                              \
        if (ROUND == 0) f = _mm_xor_si128(d, _mm_and_si128(b, _mm_xor_si128(c, d)));                \
        else if (ROUND == 1) f = _mm_xor_si128(c, _mm_and_si128(d, _mm_xor_si128(b, c)));           \
        else if (ROUND == 2) f = _mm_xor_si128(_mm_xor_si128(b, c), d);                             \
        else f = _mm_xor_si128(c, _mm_or_si128(b, _mm_xor_si128(d, _mm_set1_epi32(-1))));           \
        x = _mm_add_epi32(x, f);                                                                    \
        a = _mm_add_epi32(b, _mm_or_si128(_mm_slli_epi32(x, S), _mm_srli_epi32(x, 32 - S)));        \
    } while (0)
/* AVX-512VL on the same 128-bit lanes: each round's function is one vpternlogd (its
 * truth table over b, c, d: F 0xca, G 0xe4, H 0x96, I 0x39) and the rotation one
 * vprold, so a step's chain is 4 instructions instead of 6. */
#define STEP_AVX512(ROUND, i, a, b, c, d, S)                                                        \
    do {                                                                                            \
        __m128i x = _mm_add_epi32(a, mk[i]);                                                        \
        KEEP_FIRST(x);                                                                              \
        x = _mm_add_epi32(x, _mm_ternarylogic_epi32(b, c, d, ROUND == 0   ? 0xca                   \
                                                             : ROUND == 1 ? 0xe4                   \
                                                             : ROUND == 2 ? 0x96                   \
                                                                          : 0x39));                \
        a = _mm_add_epi32(b, _mm_rol_epi32(x, S));                                                  \
    } while (0)
/* Four steps of a round: the rotations are literals (the shifts take immediates). */
#define STEP4(STEP, ROUND, i, S0, S1, S2, S3)                                                       \
    do {                                                                                            \
        STEP(ROUND, i, a, b, c, d, S0);                                                             \
        STEP(ROUND, i + 1, d, a, b, c, S1);                                                         \
        STEP(ROUND, i + 2, c, d, a, b, S2);                                                         \
        STEP(ROUND, i + 3, b, c, d, a, S3);                                                         \
    } while (0)

/* md5x4_blocks with one of the steps above */
#define MD5X4(NAME, STEP)                                                                           \
    static void NAME(md5_state *const s[4], const uint8_t *const p[4], size_t n)                    \
    {                                                                                               \
        __m128i h[4];                                                                               \
        for (int k = 0; k < 4; k++)                                                                 \
            h[k] = _mm_setr_epi32((int)s[0]->h[k], (int)s[1]->h[k], (int)s[2]->h[k], (int)s[3]->h[k]); \
        const uint8_t *q[4] = {p[0], p[1], p[2], p[3]};                                             \
        for (; n; n--) {                                                                            \
            __m128i m[16], mk[64];                                                                  \
            for (int w = 0; w < 16; w += 4) LOAD4(m + w, q, 4 * w);                                \
            /* K + message word: off the chain of dependent steps */                                \
            for (int i = 0; i < 64; i++) mk[i] = _mm_add_epi32(m[W[i]], _mm_set1_epi32((int)K[i])); \
            __m128i a = h[0], b = h[1], c = h[2], d = h[3];                                         \
            for (int i = 0; i < 16; i += 4) STEP4(STEP, 0, i, 7, 12, 17, 22);                       \
            for (int i = 16; i < 32; i += 4) STEP4(STEP, 1, i, 5, 9, 14, 20);                       \
            for (int i = 32; i < 48; i += 4) STEP4(STEP, 2, i, 4, 11, 16, 23);                      \
            for (int i = 48; i < 64; i += 4) STEP4(STEP, 3, i, 6, 10, 15, 21);                      \
            h[0] = _mm_add_epi32(h[0], a);                                                          \
            h[1] = _mm_add_epi32(h[1], b);                                                          \
            h[2] = _mm_add_epi32(h[2], c);                                                          \
            h[3] = _mm_add_epi32(h[3], d);                                                          \
            for (int j = 0; j < 4; j++) q[j] += MD5_BLOCK;                                          \
        }                                                                                           \
        uint32_t out[4][4];                                                                         \
        for (int k = 0; k < 4; k++) _mm_storeu_si128((__m128i *)out[k], h[k]);                     \
        /* lanes may share a state (md5x4.h): written in order, the last lane wins */               \
        for (int j = 0; j < 4; j++)                                                                 \
            for (int k = 0; k < 4; k++) s[j]->h[k] = out[k][j];                                     \
    }

MD5X4(md5x4_sse2, STEP_SSE2)
__attribute__((target("avx512f,avx512vl"))) MD5X4(md5x4_avx512, STEP_AVX512)

static int use_avx512 = -1; /* -1: not decided yet */

static int have_avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl");
}

int md5x4_set_avx512(int on)
{
    int v = on && have_avx512();
    __atomic_store_n(&use_avx512, v, __ATOMIC_RELAXED);
    return v;
}

void md5x4_blocks(md5_state *const s[4], const uint8_t *const p[4], size_t n)
{
    int v = __atomic_load_n(&use_avx512, __ATOMIC_RELAXED);
    if (v < 0) v = md5x4_set_avx512(1);
    if (v) md5x4_avx512(s, p, n);
    else md5x4_sse2(s, p, n);
}
#else
void md5x4_blocks(md5_state *const s[4], const uint8_t *const p[4], size_t n)
{
    for (int j = 0; j < 4; j++) md5_blocks(s[j], p[j], n);
}

int md5x4_set_avx512(int on)
{
    (void)on;
    return 0;
}
#endif

void md5_finish(md5_state *s, const uint8_t *tail, size_t tail_len, uint64_t total, uint8_t out[16])
{
    uint8_t last[2 * MD5_BLOCK] = {0};
    memcpy(last, tail, tail_len);
    last[tail_len] = 0x80;
    size_t n = tail_len + 1 + 8 <= MD5_BLOCK ? 1 : 2;
    uint64_t bits = total * 8;
    for (int i = 0; i < 8; i++) last[n * MD5_BLOCK - 8 + i] = (uint8_t)(bits >> (8 * i));
    md5_blocks(s, last, n);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < 4; i++) out[4 * k + i] = (uint8_t)(s->h[k] >> (8 * i));
}
