/* SHA-256 digests (OpenSSL EVP) and their hex form. Every object and tensor in a
 * store is named or checked by one of these (docs/design.md "Store layout"). */
#ifndef XFFL_DIGEST_H
#define XFFL_DIGEST_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

#define XFFL_SHA256_LEN 32
#define XFFL_SHA256_HEX 65 /* 64 hex digits + NUL */

typedef struct xffl_sha256_ctx xffl_sha256_ctx; /* opaque, incremental */

/* Caller owns the context; free with xffl_sha256_free (accepts NULL). */
xffl_sha256_ctx *xffl_sha256_create(void);
void xffl_sha256_update(xffl_sha256_ctx *c, const void *data, size_t len);
/* Writes the 32-byte digest; the context can be reused after xffl_sha256_reset. */
void xffl_sha256_final(xffl_sha256_ctx *c, uint8_t out[XFFL_SHA256_LEN]);
void xffl_sha256_reset(xffl_sha256_ctx *c);
void xffl_sha256_free(xffl_sha256_ctx *c);

/* One-shot digest of a buffer. */
void xffl_sha256(const void *data, size_t len, uint8_t out[XFFL_SHA256_LEN]);
/* One-shot digest of a buffer as lowercase hex. */
void xffl_sha256_hex(const void *data, size_t len, char hex[XFFL_SHA256_HEX]);
/* A digest whose parts are computed in parallel: the SHA-256 of the SHA-256s (hex) of
 * data's consecutive `piece`-byte pieces (the last shorter; no data: one empty piece),
 * one after another. Not the SHA-256 of data: for files that only this program reads
 * back (the --state caches), where one stream of SHA-256 would be the bottleneck (54 GB
 * at 1.6 GB/s a core). threads 0: OpenMP's default; never changes the digest. */
XFFL_MUST_USE xffl_status xffl_sha256_pieces_hex(const void *data, size_t len, size_t piece, int threads,
                                                 char hex[XFFL_SHA256_HEX]);
/* Digest of a whole file, streamed; optionally its size. */
XFFL_MUST_USE xffl_status xffl_sha256_file(const char *path, char hex[XFFL_SHA256_HEX], uint64_t *size);

void xffl_hex_encode(const uint8_t *bytes, size_t n, char *hex /* 2n+1 */);

#endif
