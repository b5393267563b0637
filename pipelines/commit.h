/* Uploading one facility's delta for a round: parts first (in parallel), the COMMIT
 * manifest last, so a reader that sees the COMMIT sees every part it names.
 *
 * COMMIT headers (format=xffl-commit, format_version=1): round, facility, attempt,
 * base_version, base_index, federation (sha256 of federation.h5), encoding, block,
 * tokens, steps, loss_first, loss_last, loss_mean, seconds, bytes, then the caller's
 * extra headers (cursor, backend, threads, shards, inner_state, ...); then one
 * `object` line per part (full key) and one `tensor` line per tensor (float32,
 * table shape, SHA-256 of the decoded delta values). */
#ifndef XFFL_PIPE_COMMIT_H
#define XFFL_PIPE_COMMIT_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/federation.h"
#include "pipelines/round.h"
#include "pipelines/version.h"
#include "storage/store.h"

typedef struct {
    const pipe_federation *f;
    const char *fed_sha;
    const ckpt_param_table *t;
    const pipe_version_ref *base;
    int64_t round;
    const char *facility;
    int attempt;
    const float *delta;  /* θ_local − θ_v, t->total floats */
    float *residual;     /* error-feedback residual (lossy encodings), updated; may be NULL */
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean, seconds;
    int n_extra;
    const char *const *extra_keys;
    const char *const *extra_values;
    int threads;         /* compression threads; 0 = default */
    const struct xffl_signer *signer; /* the facility's key: signs the COMMIT (NULL: unsigned federation) */
    const char *keep_dir; /* NULL: none. Else, once the COMMIT is written, the part files
                           * replace what this directory held: the facility's copy of what
                           * it sent, which its replay of the round reads instead of
                           * downloading it (pipelines/download.h). A failure to keep them
                           * is a warning: the round is committed. */
    /* NULL: none. Else called once the delta is encoded (the residual final), on a
     * thread of its own while the parts go up; the COMMIT is written only after it
     * returned XFFL_OK. For what the caller's own state becomes with this COMMIT
     * (train: --state DIR/next/), so that a job stopped right after the COMMIT leaves
     * it behind for the next job to find. */
    xffl_status (*before_commit)(void *ctx);
    void *before_commit_ctx;
} pipe_commit_spec;

/* Encodes and uploads; commit_key (PIPE_KEY_MAX) receives the COMMIT's key, bytes
 * (may be NULL) the parts' stored bytes. Local temporary files are removed. */
XFFL_MUST_USE xffl_status pipe_commit_delta(store *s, const pipe_commit_spec *c, char *commit_key, uint64_t *bytes);

#endif
