/* What happened, round by round, read from the store alone: per version its
 * contributors and their figures (from their COMMITs: tokens, losses, seconds,
 * bytes), and the attempts of the round in progress. `status`, `plot` and the demo's
 * table are built on it. */
#ifndef XFFL_PIPE_HISTORY_H
#define XFFL_PIPE_HISTORY_H

#include <stdint.h>
#include "common/status.h"
#include "pipelines/federation.h"
#include "pipelines/round.h"
#include "storage/store.h"

typedef struct {
    char facility[64];
    char commit_key[PIPE_KEY_MAX];
    int attempt;
    pipe_attempt_state state;
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean, seconds;
    uint64_t bytes;
    char reason[256]; /* rejected: why */
} pipe_history_entry;

typedef struct {
    int64_t round;        /* version number it produced (or the round in progress) */
    int done;             /* 1: version exists (kept); 0: in progress */
    char index_key[PIPE_KEY_MAX];
    int64_t tokens_seen;
    uint64_t version_bytes;
    int n;
    pipe_history_entry *e; /* accepted (done) or every latest attempt (in progress) */
} pipe_history_round;

typedef struct {
    pipe_version_ref latest;
    pipe_federation f;
    int n_rounds;
    pipe_history_round *rounds; /* ascending; the last is the round in progress */
} pipe_history;

/* Walks the kept chain from LATEST (every version back to 1 that is still stored)
 * and the round after it. */
XFFL_MUST_USE xffl_status pipe_history_load(store *s, pipe_history *h);
void pipe_history_free(pipe_history *h);

#endif
