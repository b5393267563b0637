/* Byte shuffle for 4-byte elements, both ways. See shuffle.h.
 *
 * Why the vector path: a cold checkpoint read decompresses, unshuffles and hashes
 * every byte on few cores, and the byte-at-a-time loop ran at a fifth of memory
 * speed. With 64 bytes (16 floats) as a 16x4 byte matrix, byte b of element e sits
 * at index 4e+b and belongs at 16b+e: a rotation of the 6 index bits by 4 (shuffle)
 * or by 2 (unshuffle). One "perfect shuffle" of the 64 bytes (out[2i] = in[i],
 * out[2i+1] = in[i+32]) rotates the index left by one, and is four byte unpacks of
 * the four 16-byte registers: so shuffling is four rounds, unshuffling two. */
#include "libckpt/shuffle.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__)
#include <emmintrin.h>

/* One perfect shuffle of r[0..3] (64 bytes) in place. */
static inline void perfect_shuffle(__m128i r[4])
{
    __m128i a = _mm_unpacklo_epi8(r[0], r[2]), b = _mm_unpackhi_epi8(r[0], r[2]);
    __m128i c = _mm_unpacklo_epi8(r[1], r[3]), d = _mm_unpackhi_epi8(r[1], r[3]);
    r[0] = a, r[1] = b, r[2] = c, r[3] = d;
}

/* (16 elements x 4 bytes) -> (4 planes x 16 bytes), for i < nelem rounded down to 16 */
static size_t shuffle4_vec(const uint8_t *s, uint8_t *d, size_t nelem)
{
    size_t i = 0;
    for (; i + 16 <= nelem; i += 16) {
        __m128i r[4];
        for (int k = 0; k < 4; k++) r[k] = _mm_loadu_si128((const __m128i *)(s + 4 * i + 16 * k));
        for (int round = 0; round < 4; round++) perfect_shuffle(r);
        for (int k = 0; k < 4; k++) _mm_storeu_si128((__m128i *)(d + (size_t)k * nelem + i), r[k]);
    }
    return i;
}

/* (4 planes x 16 bytes) -> (16 elements x 4 bytes) */
static size_t unshuffle4_vec(const uint8_t *s, uint8_t *d, size_t nelem)
{
    size_t i = 0;
    for (; i + 16 <= nelem; i += 16) {
        __m128i r[4];
        for (int k = 0; k < 4; k++) r[k] = _mm_loadu_si128((const __m128i *)(s + (size_t)k * nelem + i));
        for (int round = 0; round < 2; round++) perfect_shuffle(r);
        for (int k = 0; k < 4; k++) _mm_storeu_si128((__m128i *)(d + 4 * i + 16 * k), r[k]);
    }
    return i;
}
#else
static size_t shuffle4_vec(const uint8_t *s, uint8_t *d, size_t nelem) { return (void)s, (void)d, (void)nelem, 0; }
static size_t unshuffle4_vec(const uint8_t *s, uint8_t *d, size_t nelem) { return (void)s, (void)d, (void)nelem, 0; }
#endif

/* Elements [from, nelem) one byte at a time, then the trailing partial element. */
static void shuffle_tail(const uint8_t *s, uint8_t *d, size_t nbytes, size_t elsize, size_t from)
{
    size_t nelem = nbytes / elsize;
    for (size_t j = 0; j < elsize; j++)
        for (size_t i = from; i < nelem; i++) d[j * nelem + i] = s[i * elsize + j];
    memcpy(d + nelem * elsize, s + nelem * elsize, nbytes - nelem * elsize);
}

static void unshuffle_tail(const uint8_t *s, uint8_t *d, size_t nbytes, size_t elsize, size_t from)
{
    size_t nelem = nbytes / elsize;
    for (size_t j = 0; j < elsize; j++)
        for (size_t i = from; i < nelem; i++) d[i * elsize + j] = s[j * nelem + i];
    memcpy(d + nelem * elsize, s + nelem * elsize, nbytes - nelem * elsize);
}

void ckpt_shuffle_ref(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    if (elsize <= 1) memcpy(dst, src, nbytes);
    else shuffle_tail(src, dst, nbytes, elsize, 0);
}

void ckpt_unshuffle_ref(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    if (elsize <= 1) memcpy(dst, src, nbytes);
    else unshuffle_tail(src, dst, nbytes, elsize, 0);
}

void ckpt_shuffle(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    if (elsize == 4) shuffle_tail(src, dst, nbytes, 4, shuffle4_vec(src, dst, nbytes / 4));
    else ckpt_shuffle_ref(src, dst, nbytes, elsize);
}

void ckpt_unshuffle(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    if (elsize == 4) unshuffle_tail(src, dst, nbytes, 4, unshuffle4_vec(src, dst, nbytes / 4));
    else ckpt_unshuffle_ref(src, dst, nbytes, elsize);
}
