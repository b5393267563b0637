/* A facility's token stream for training and eval: the shards (text/shards.h) matched
 * by a glob, in bytewise sorted order. Sequence i (T+1 tokens) comes from shard i mod S,
 * at the ((i / S) mod n_j)-th of that shard's n_j = ⌊(tokens_j − 1)/T⌋ sequences:
 * shards are interleaved sequence by sequence (a union of corpora is mixed, not
 * concatenated) and each wraps around on its own.
 *
 * The position is a cursor "<sequences consumed>" that train stores in its COMMIT
 * (start and end) and in --state DIR, so the next round resumes where this one
 * stopped and `reproduce --train` replays exactly the same batches: this order is
 * part of what a reproduce digest checks. */
#ifndef XFFL_TEXT_LOADER_H
#define XFFL_TEXT_LOADER_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

typedef struct text_loader text_loader; /* opaque */

typedef struct {
    int64_t seq; /* sequences consumed so far */
} text_cursor;

/* Opens every file matching glob (sorted bytewise), checks that each was packed with
 * the tokenizer whose SHA-256 is tokenizer_sha256 (NULL or "": byte-level; the record
 * beside the shards says, text_shard_tokenizer: INVALID naming the shard and both
 * tokenizers), its header, and that every token is < vocab (INVALID naming shard and
 * offset). NOT_FOUND naming the glob when nothing matches. Caller owns *out;
 * text_loader_close accepts NULL. */
XFFL_MUST_USE xffl_status text_loader_open(const char *glob, int vocab, const char *tokenizer_sha256,
                                           text_loader **out);
void text_loader_close(text_loader *l);
int text_loader_shards(const text_loader *l);
/* The seeded order (init --data-order strided): the j-th sequence a shard gives is its
 * text_loader_stride_index(seed, shard, j / n_j, n_j, j mod n_j)-th instead of its
 * (j mod n_j)-th. A facility's consecutive steps then read sequences far apart in its
 * corpus (many files in a round, not one file's text for H steps), and each pass over
 * it is another permutation. Shards still interleave sequence by sequence and the
 * cursor means the same; an opened loader reads in file order until this is called. */
void text_loader_stride(text_loader *l, uint64_t seed);
/* The permutation: k -> (a k + b) mod n for k in 0..n-1, with a stride a in 1..n-1
 * coprime to n and an offset b, both from a 64-bit hash of (seed, shard, pass): integer
 * only, so every machine reads the same sequences. n < 2 gives 0. */
uint64_t text_loader_stride_index(uint64_t seed, int shard, int64_t pass, int64_t n, int64_t k);
int64_t text_loader_tokens(const text_loader *l);
/* "name:<first 12 hex of its sha256>" per shard, comma separated (owned by l). */
const char *text_loader_digests(const text_loader *l);

/* Next B sequences of T (+1 for targets) tokens from *c, advancing it by B. INVALID
 * naming the shard if one holds fewer than T+1 tokens. */
XFFL_MUST_USE xffl_status text_loader_next(text_loader *l, text_cursor *c, int B, int T, int32_t *inputs,
                                           int32_t *targets);

/* "<seq>" (out ≥ 32 bytes) and back (INVALID naming the text). */
void text_cursor_format(const text_cursor *c, char *out, size_t cap);
XFFL_MUST_USE xffl_status text_cursor_parse(const char *text, text_cursor *c);

#endif
