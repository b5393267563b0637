/* HDF5's byte shuffle (filter 2), bit-exact, outside HDF5's pipeline so the part
 * writer and reader can run it in their own threads.
 *
 * Shuffling puts byte j of element i at dst[j*nelem + i] (nelem = nbytes / elsize);
 * trailing bytes of a partial element are copied as they are. src and dst must not
 * overlap. float32 (elsize 4) has a vector path on x86-64 (SSE2, part of the base
 * ISA, so no run-time dispatch); every other size, and other CPUs, use the portable
 * loop, which is also the reference the tests compare the fast path against. */
#ifndef XFFL_CKPT_SHUFFLE_H
#define XFFL_CKPT_SHUFFLE_H

#include <stddef.h>

void ckpt_shuffle(const void *src, void *dst, size_t nbytes, size_t elsize);
void ckpt_unshuffle(const void *src, void *dst, size_t nbytes, size_t elsize);

/* The portable loops alone (tests compare the fast path against them). */
void ckpt_shuffle_ref(const void *src, void *dst, size_t nbytes, size_t elsize);
void ckpt_unshuffle_ref(const void *src, void *dst, size_t nbytes, size_t elsize);

#endif
