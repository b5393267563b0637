/* The train job's internals, shared by train.c (the job) and train_reproduce.c
 * (reproduce --train runs the same loop from a COMMIT's inputs). Not an interface:
 * pipelines/train.h is. */
#ifndef XFFL_PIPE_TRAIN_JOB_H
#define XFFL_PIPE_TRAIN_JOB_H

#include <stdint.h>
#include "common/digest.h"
#include "common/sign.h"
#include "common/status.h"
#include "pipelines/train.h"
#include "text/loader.h"

/* Inner optimizer state as one file: int64 step, then m and v slabs. */
typedef struct {
    int64_t step;
    float *m, *v;
    int present;
    char sha[XFFL_SHA256_HEX];
} inner_state;
void train_inner_free(inner_state *s);
XFFL_MUST_USE xffl_status train_inner_save(const char *path, int64_t n, const inner_state *s);
/* The file straight into step, m and v (no copy of 8n bytes through a buffer), its
 * digest taken as it is read. */
XFFL_MUST_USE xffl_status train_inner_load(const char *path, int64_t n, inner_state *s);

/* What a round of pipe_train_rounds hands the next in the same process (train_carry.c):
 * the backend's model (every rank), and the AdamW state and residual rank 0 wrote to
 * --state DIR, still in memory. All NULL-safe. */
train_carry *train_carry_create(void);
void train_carry_free(train_carry *c);
pipe_loop_keep *train_carry_loop(train_carry *c); /* NULL for NULL */
/* After the COMMIT and the state's move: takes inner's m and v and *residual (each may
 * be NULL: not kept) with the identity of DIR/inner.bin and DIR/residual.f32. */
void train_carry_keep(train_carry *c, const char *state_dir, int64_t n, inner_state *inner, float **residual);
/* 1 with the kept AdamW state in *s (its digest as train_inner_load takes it) when path
 * is still the file kept for n floats; else 0, and the caller reads path. */
int train_carry_take_inner(train_carry *c, const char *path, int64_t n, inner_state *s);
/* The same for the residual: the kept buffer replaces *buf (freed). */
int train_carry_take_floats(train_carry *c, const char *path, int64_t n, float **buf);

/* What every rank of the job needs from rank 0's look at the store (sent as bytes). */
typedef struct {
    int64_t status, skipped, round, attempt, cursor, keep, inner_present, inner_step;
    char why[160];
    char tag[PIPE_KEY_MAX + 3 * XFFL_SHA256_HEX + 64];
} round_plan;

/* One round's inputs: rank 0 reads them from the store and --state DIR (prepare), the
 * others receive them (share). */
typedef struct {
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref base;
    ckpt_param_table *t;
    float *theta, *base_theta, *residual;
    float *outer;       /* version v's outer optimizer state (rank 0, with --state DIR), for the next replay */
    text_loader *sh;
    inner_state inner;
    char sd[4096], inner_sha[XFFL_SHA256_HEX];
    int lossy;
    xffl_signer *signer; /* the facility's key (NULL: unsigned federation) */
    pipe_download download; /* how version v's model came (route, bytes) */
    int ahead;          /* base is version base.version replayed ahead of its INDEX, from: */
    int n_ahead;
    char ahead_keys[PIPE_MAX_FACILITIES][PIPE_KEY_MAX]; /* the COMMITs, sorted by facility */
    int ahead_missed;   /* the published version is not the replay: train again */
} round_job;
void train_job_free(round_job *j);

int train_file_exists(const char *p);
/* n floats of the file at path into out (a wrong size names the file) */
XFFL_MUST_USE xffl_status train_load_floats(const char *path, int64_t n, float *out);
/* The facility's shards, read in the federation's order (data_strided: text/loader.h). */
XFFL_MUST_USE xffl_status train_open_shards(const char *glob, const pipe_federation *f, text_loader **out);
/* The loop on every rank of c (NULL: one), with the job's inner state; tag (NULL: no
 * checkpoints) names the inputs a loop checkpoint may be resumed from. */
XFFL_MUST_USE xffl_status train_run_loop(xffl_comm *c, const pipe_train_options *o, round_job *j,
                                         const round_plan *plan, int64_t round, const char *tag,
                                         xffl_log_level progress, pipe_loop_result *lr);

/* How --state DIR moves on with a round's COMMIT (train_state.c). The state after the
 * round (cursor, inner.bin, residual.f32) is written to DIR/next/ while the delta goes
 * up, next/round ("round R attempt A") last; after the COMMIT the files are renamed
 * into DIR. A job stopped between the COMMIT and those renames (before: the state was
 * written after the COMMIT, and such a job left the old cursor and AdamW state, so the
 * next round trained this round's data again) leaves next/ complete, and the next job
 * of the facility finishes the move when the store has that COMMIT, else drops it. */
#define TRAIN_STATE_NEXT "next"
typedef struct {
    const char *state_dir;
    int64_t round;
    int attempt;
    const char *cursor_end;
    const inner_state *inner; /* NULL: not kept */
    const float *residual;    /* NULL: lossless encoding */
    int64_t n;
} train_next_state;
/* pipe_commit_spec.before_commit: DIR/next/ from a train_next_state */
XFFL_MUST_USE xffl_status train_state_stage(void *ctx);
XFFL_MUST_USE xffl_status train_state_promote(const char *state_dir);
/* at a job's start, before the state is read: a move a stopped job left behind */
XFFL_MUST_USE xffl_status train_state_recover(store *s, const char *state_dir, const char *facility);
/* After round `round`'s COMMIT: removes DIR/r<R>/ (a round's inputs, for reproduce
 * --train) for every R <= round - keep, so DIR keeps the inputs of the `keep` latest
 * rounds. Each is the model's size two or three times over (AdamW m and v, the
 * residual): 1 GB a round for `base`, 81 GB for `7b`. */
XFFL_MUST_USE xffl_status train_state_prune(const char *state_dir, int64_t round, int keep);

#endif
