/* One facility's job for one round: read LATEST → v, fetch and verify θ_v, run H
 * AdamW steps on the facility's own shards (the loop of pipelines/loop.h, on every
 * rank of o->comm), delta = θ_local − θ_v, encode, upload parts, COMMIT last
 * (pipelines/commit.h). Rank 0 alone reads the store and --state DIR and sends the
 * others what they need; it commits only after every rank finished the loop, so a
 * rank that fails leaves no COMMIT.
 *
 * --state DIR (the facility's, never shared) holds:
 *   cursor               data cursor after the last committed round
 *   inner.bin            AdamW state after it (only with keep_inner_state)
 *   residual.f32         error-feedback residual after it (lossy encodings only)
 *   r<round>/inner.bin, r<round>/residual.f32
 *                        the inputs of each round, for reproduce --train
 *   r<round>/loop-*      the loop's checkpoint (checkpoint_every), removed after the COMMIT
 *   next/                the state after the round being committed (train_job.h: written
 *                        before the COMMIT, moved into place after it)
 * Without a state file the cursor comes from this facility's latest COMMIT in the
 * store (cursor_end), so a stateless job resumes too. */
#ifndef XFFL_PIPE_TRAIN_H
#define XFFL_PIPE_TRAIN_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"
#include "pipelines/download.h"
#include "pipelines/federation.h"
#include "pipelines/trust.h"
#include "pipelines/inspect.h"
#include "pipelines/loop.h"
#include "pipelines/round.h"
#include "storage/store.h"

typedef struct train_carry train_carry; /* pipelines/train_job.h */

typedef struct {
    const char *facility;
    const char *data_glob;
    int64_t round;          /* -1: LATEST+1 */
    const char *state_dir;  /* may be NULL */
    int keep_inner_state;   /* 1: force on (also on when the federation says so) */
    const char *backend;    /* "cpu", "cuda", NULL = auto */
    int threads;            /* cpu threads, 0 = all */
    int zstd_threads;       /* compression threads, 0 = default */
    int accumulate;         /* K micro-batches per rank and step (0 = 1; pipelines/loop.h) */
    int recompute;          /* recompute activations layer by layer (same bits, less memory) */
    kern_precision precision; /* cpu GEMMs: auto (default: bf16 where the CPU has bf16 units), fp32, bf16 */
    pipe_opt_mode optimizer;/* auto: the backend's AdamW for 1 rank x 1 micro-batch, else sharded */
    int checkpoint_every;   /* save the loop's state to --state DIR/r<round>/ every N steps (0: never) */
    int halt_after;         /* tests: stop (exit 1) right after step N's checkpoint, like a kill */
    int stop_at;            /* tests: the last rank SIGSTOPs itself mid-step N (pipe_loop_options) */
    int kill_after_commit;  /* tests: SIGKILL itself right after the COMMIT, before --state DIR moves on */
    xffl_comm *comm;        /* the job's ranks (NULL: one rank); rank 0 alone reads the
                             * version and writes the delta and COMMIT */
    const pipe_trust_options *trust; /* signing key and federation.h5 pin (NULL: defaults;
                             * the pin lives in state_dir when there is one) */
    int keep_rounds;        /* the inputs (state_dir/r<R>/) of this many latest rounds stay
                             * for reproduce --train; older ones are removed after each
                             * COMMIT (-1: all, the default) */
    int ahead;              /* train ahead (below); needs state_dir */
    double wait;            /* seconds a job waits for what other jobs write: ahead, the
                             * other facilities' deltas, then the version; between the
                             * rounds of pipe_train_rounds, the next version (0: 600) */
    train_carry *carry;     /* pipe_train_rounds: what a round hands the next in this
                             * process (NULL: a job of its own) */
    double poll;            /* the longest pause between two looks at the store while
                             * waiting (0: 1 s; common/util.h xffl_backoff) */
} pipe_train_options;

void pipe_train_options_default(pipe_train_options *o);
/* o->wait, or its default */
double pipe_train_wait(const pipe_train_options *o);

typedef struct {
    int skipped;            /* 1: nothing to do (see why) */
    char why[160];
    int64_t round;
    int attempt;
    char commit_key[PIPE_KEY_MAX];
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean, seconds, train_seconds;
    double step_seconds_median; /* steady state: the median step after the first */
    uint64_t bytes;
    pipe_download_route download_route; /* how version v came: full, update or replay (pipelines/download.h) */
    uint64_t download_bytes;/* bytes downloaded for version v's model (COMMIT download_bytes=) */
    char cursor_start[64], cursor_end[64];
} pipe_train_result;

/* NOT_YET (75) when --round R's base version R−1 does not exist; USAGE naming the
 * facility when it is not in the federation; skipped = 1 (exit 0) when version R
 * exists already or this facility has a pending or accepted attempt for the round.
 * Progress (the attempt, step lines, the upload) is logged at INFO. */
XFFL_MUST_USE xffl_status pipe_train(store *s, const pipe_train_options *o, pipe_train_result *res);
/* Training ahead (o->ahead, docs/design.md "Training ahead"): when this facility has a
 * pending attempt for round v+1 and LATEST is still v, the job does not stop there. It
 * waits (o->wait) until every facility of the federation has a pending attempt
 * for round v+1, replays version v+1 from them and the version v it kept in --state DIR
 * (pipelines/download.h), and trains round v+2 from that while the aggregation job
 * publishes v+1. Before its COMMIT it waits for version v+1 and checks that its INDEX
 * combined the same deltas into the same bits; when it did not (the aggregator left
 * one out, say), the round is trained again from the published v+1, and the COMMIT
 * names v+1's INDEX either way. NOT_YET when the deltas or the version do not come in
 * time. Without a pending attempt for round v+1 the job is an ordinary one. */

/* Rounds R..R+n-1 in this one process (R: o->round, else LATEST+1), one pipe_train
 * each, with the results of n separate jobs, bit for bit: every round reads its inputs
 * from the store and --state DIR and leaves them there as a job does. Before round r+1
 * it waits (o->wait) for version r to be published, or with o->ahead trains round r+1
 * ahead as soon as every facility's delta for round r is in. For the batch system: one
 * allocation (one queue wait, one GPU context) for n rounds. on_round (rank 0; may be
 * NULL) sees each round's result, skipped ones too. Stops at the first error: NOT_YET
 * when version r does not come in time. */
XFFL_MUST_USE xffl_status pipe_train_rounds(store *s, const pipe_train_options *o, int n,
                                            void (*on_round)(void *ctx, const pipe_train_result *r), void *ctx);

/* The inner AdamW configuration of round `round` (1-based) and the schedule position
 * of its first step: with f->inner.total_rounds = R > 0 one schedule spans the local
 * steps of rounds 1..R (R*H; with a local-step schedule, the sum of each round's:
 * warm-up only at the start of round 1, the cosine reaching min_lr at the end of round
 * R, min_lr after), so step0 = the steps of rounds 1..round-1 ((round-1)*H); with 0 it
 * restarts every round (step0 0, horizon the round's steps). Step s of the round uses
 * kern_lr_at(ac, step0 + s). */
void pipe_inner_schedule(const pipe_federation *f, int64_t round, kern_adamw_config *ac, int64_t *step0);

typedef struct {
    int tensors_compared;
    int tensors_differ;
} pipe_train_reproduce_report;

/* reproduce --train: re-runs o->facility's training for round o->round from its
 * accepted COMMIT's base, cursor and (with keep_inner_state) the inner state kept in
 * o->state_dir/r<round>/, encodes it, and compares every delta tensor digest with the
 * COMMIT. INVALID naming the first differing tensor; each differing tensor is logged
 * (ERROR, "differs: ..."), a thread count or backend other than the COMMIT's too (WARN,
 * "note: ..."), and the re-run's step lines at DEBUG. Uploads nothing. */
XFFL_MUST_USE xffl_status pipe_train_reproduce(store *s, const pipe_train_options *o,
                                               pipe_train_reproduce_report *out);

#endif
