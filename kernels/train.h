/* Loops over a kern_model already holding θ (kern_set_params): kern_train (H AdamW
 * steps; only its unit test calls it today: the federation job, pipelines/train.c,
 * runs its own step loop over kern.h so it can start the schedule mid-run), kern_eval
 * (xffl eval) and kern_sample (xffl sample). Data comes through a callback so the
 * loader (text/loader.h for token shards) stays outside kernels/. */
#ifndef XFFL_KERN_TRAIN_H
#define XFFL_KERN_TRAIN_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"

/* Fills inputs and targets, (B,T) ids each, with the next batch. */
typedef xffl_status (*kern_batch_fn)(void *ctx, int B, int T, int32_t *inputs, int32_t *targets);

typedef struct {
    int steps;                  /* H */
    int batch, seq_len;         /* B x T per step (<= the model's planned sizes) */
    kern_adamw_config adamw;    /* schedule position = step index 0..steps-1 */
    kern_batch_fn next_batch;
    void *batch_ctx;
    double progress_seconds;    /* at most this long between progress lines (0: 2 s); first and last always */
} kern_train_options;

typedef struct {
    int64_t tokens;   /* B*T*steps */
    int steps;
    double seconds;
    float loss_first, loss_last, loss_mean;
    float grad_norm_last;
} kern_train_result;

/* Runs o->steps AdamW steps; losses (o->steps floats, may be NULL) receives the
 * per-step loss trace. Progress goes to the log at INFO ("train: step S/STEPS loss L
 * (N tokens/s)", tokens/s since the start). θ_local stays in m (kern_get_params). The
 * optimizer state is not reset here (kern_reset_optimizer is the caller's choice).
 * INVALID naming the step when the loss or gradient norm is not finite. */
XFFL_MUST_USE xffl_status kern_train(kern_model *m, const kern_train_options *o, float *losses, kern_train_result *r);

/* Mean loss over n_batches batches from next_batch (B x T each). */
XFFL_MUST_USE xffl_status kern_eval(kern_model *m, int B, int T, int n_batches, kern_batch_fn next_batch, void *ctx,
                      double *mean_loss);

typedef struct {
    float temperature; /* 0: greedy (argmax, lowest id on ties): deterministic */
    uint64_t seed;     /* sampling stream for temperature > 0 */
    int tokens;        /* how many to generate */
} kern_sample_options;

/* Continues prompt (n_prompt >= 1 ids) by o->tokens ids into out. The context is the
 * last seq_len ids (the model's planned T); the model must be planned with batch >= 1.
 * USAGE when the prompt is empty. */
XFFL_MUST_USE xffl_status kern_sample(kern_model *m, int seq_len, const int32_t *prompt, int n_prompt, const kern_sample_options *o,
                        int32_t *out);

#endif
