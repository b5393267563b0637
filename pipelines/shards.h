/* A facility's token stream for training: llm.c-format shards (256 × int32 header,
 * magic 20240520, version 1, token count; then uint16 tokens) matched by a glob,
 * in sorted order. Sequence i (T+1 tokens) comes from shard i mod S, at the
 * ((i / S) mod n_j)-th of that shard's n_j = ⌊(tokens_j − 1)/T⌋ sequences: shards are
 * interleaved sequence by sequence (a union of corpora is mixed, not concatenated) and
 * each wraps around on its own.
 *
 * The position is a cursor "<sequences consumed>" that train stores in its COMMIT
 * (start and end) and in --state DIR, so the next round resumes where this one
 * stopped and `reproduce --train` replays exactly the same batches. */
#ifndef XFFL_PIPE_SHARDS_H
#define XFFL_PIPE_SHARDS_H

#include <stdint.h>
#include "common/digest.h"
#include "common/status.h"

#define PIPE_SHARD_MAGIC 20240520

typedef struct pipe_shards pipe_shards; /* opaque */

typedef struct {
    int64_t seq; /* sequences consumed so far */
} pipe_cursor;

/* Opens every file matching glob (sorted bytewise), checks headers and that every
 * token is < vocab (INVALID naming shard and offset). NOT_FOUND naming the glob when
 * nothing matches. Caller owns *out; pipe_shards_close accepts NULL. */
xffl_status pipe_shards_open(const char *glob, int vocab, pipe_shards **out);
void pipe_shards_close(pipe_shards *s);
int pipe_shards_count(const pipe_shards *s);
int64_t pipe_shards_tokens(const pipe_shards *s);
/* "name:<first 12 hex of its sha256>" per shard, comma separated (owned by s). */
const char *pipe_shards_digests(const pipe_shards *s);

/* Next B sequences of T (+1 for targets) tokens from *c, advancing it by B. INVALID
 * naming the shard if one holds fewer than T+1 tokens. */
xffl_status pipe_shards_next(pipe_shards *s, pipe_cursor *c, int B, int T, int32_t *inputs, int32_t *targets);

/* "<seq>" (out ≥ 32 bytes) and back (INVALID naming the text). */
void pipe_cursor_format(const pipe_cursor *c, char *out, size_t cap);
xffl_status pipe_cursor_parse(const char *text, pipe_cursor *c);

#endif
