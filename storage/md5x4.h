/* MD5 (RFC 1321) of four independent streams at once, one per 32-bit lane of a 128-bit
 * register, and the scalar block function beside it as the reference. MD5 is a chain of
 * dependent steps, so one stream leaves most of a core idle; four streams fill more of
 * it. SSE2 (every x86-64 CPU) by default; AVX-512VL where the CPU has it (chosen at run
 * time: vpternlogd and vprold shorten each step); elsewhere the reference, four times.
 * Used by file_md5s.c, which hashes a batch of files for ETag checks. */
#ifndef XFFL_MD5X4_H
#define XFFL_MD5X4_H

#include <stddef.h>
#include <stdint.h>

#define MD5_BLOCK 64

typedef struct {
    uint32_t h[4];
} md5_state;

void md5_init(md5_state *s);
/* Reference: n whole 64-byte blocks of p into s. */
void md5_blocks(md5_state *s, const uint8_t *p, size_t n);
/* The same for four streams: n blocks of p[i] into s[i], i = 0..3. The four may alias
 * (a lane with nothing to do can repeat another's input into a scratch state). */
void md5x4_blocks(md5_state *const s[4], const uint8_t *const p[4], size_t n);
/* Which lanes md5x4_blocks uses: AVX-512VL (on = 1, where the CPU has it: the default)
 * or SSE2 (on = 0). Returns 1 if AVX-512VL is in use. For tests of both. */
int md5x4_set_avx512(int on);
/* The last tail_len (< 64) bytes of a stream of total bytes in all, the padding and the
 * length; the digest into out. */
void md5_finish(md5_state *s, const uint8_t *tail, size_t tail_len, uint64_t total, uint8_t out[16]);

#endif
