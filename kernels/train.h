/* Loops over a kern_model already holding θ (kern_set_params): kern_eval (xffl eval)
 * and kern_sample (xffl sample). Data comes through a callback so the loader
 * (text/loader.h for token shards) stays outside kernels/. Training has one loop,
 * pipelines/loop.h (it needs the ranks of comm/). */
#ifndef XFFL_KERN_TRAIN_H
#define XFFL_KERN_TRAIN_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"

/* Fills inputs and targets, (B,T) ids each, with the next batch. */
typedef xffl_status (*kern_batch_fn)(void *ctx, int B, int T, int32_t *inputs, int32_t *targets);

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
