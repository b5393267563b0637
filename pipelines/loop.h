/* The training loop: the one loop that the train job, `reproduce --train`, the
 * benchmarks and the tests run (docs/design.md "Training").
 *
 * One call runs steps AdamW steps of one model on every rank of comm (every rank calls
 * it with the same options). Step s consumes the global batch of sequences
 * [cursor + s*batch, cursor + (s+1)*batch) of the stream; with R ranks and accumulate
 * K, M = R*K micro-batches of batch/M sequences each: global micro-batch j = r*K + k is
 * rank r's k-th, sequences [j*batch/M, (j+1)*batch/M) of the global batch. Each
 * micro-batch's gradient is computed into its own buffer; the gradient of the step is
 *     g = (((g_0 + g_1) + g_2) + ... + g_{M-1}) / M       (divided only when M > 1)
 * element by element in that order whatever R and K are (with R > 1 and K > 1 every
 * micro-batch gradient travels on its own, see loop.c), so the delta depends on the
 * split only through M: `--ranks 2` gives the bits of 1 rank with `--accumulate 2`.
 * The loss of a step is the mean of its M micro-batch losses, added in j order.
 *
 * Optimizer (the gradient norm and its clip always over fixed chunks, kernels/shard.h):
 *   PIPE_OPT_AUTO        the backend's own AdamW when M = 1 and R = 1 (what the train
 *                        job did before this loop existed); else SHARDED
 *   PIPE_OPT_SHARDED     ZeRO-2: gradients reduce-scattered, AdamW moments and fp32
 *                        master weights only for this rank's shard (chunk-aligned
 *                        ranges of the parameter slab), parameters all-gathered after
 *                        each step. With 1 rank: one shard, the whole slab
 *   PIPE_OPT_REPLICATED  gradients all-reduced, every rank updates the whole slab
 * The three give the same bits (cpu backend; on cuda the backend's own AdamW rounds
 * differently from the host one).
 *
 * Checkpoints (checkpoint_dir and checkpoint_every > 0): after every N-th step (not the
 * last) each rank writes its shard of the weights and of the AdamW state, the data
 * cursor, the step and the loss sums to checkpoint_dir/loop-<step>-<rank>.bin
 * (atomically), then rank 0 moves checkpoint_dir/loop-ckpt ("step S ranks R tag T")
 * to it. A later call with the same options and tag resumes after step S and ends
 * with the bits of an uninterrupted run; a checkpoint of another tag, rank count or
 * model is ignored (logged) and the run starts over. */
#ifndef XFFL_PIPE_LOOP_H
#define XFFL_PIPE_LOOP_H

#include <stdint.h>
#include "comm/comm.h"
#include "common/log.h"
#include "common/status.h"
#include "kernels/kern.h"

/* Fills inputs and targets, (B,T) ids each, with sequences [seq, seq+B) of the
 * stream (the loader's cursor positions). */
typedef xffl_status (*pipe_batch_fn)(void *ctx, int64_t seq, int B, int T, int32_t *inputs, int32_t *targets);

/* Floats per rank that one exchange moves by default: 8 chunks of kernels/shard.h, 2 MB
 * of fp32, so that what follows a piece (its mean, norm and AdamW) finds it in cache;
 * 1 << 20 ran the 2-rank `small` step ~2 % slower. */
enum { PIPE_LOOP_PIECE = 1 << 19 };

typedef enum { PIPE_OPT_AUTO, PIPE_OPT_SHARDED, PIPE_OPT_REPLICATED } pipe_opt_mode;

/* "auto", "sharded", "replicated" (train --optimizer); USAGE naming the others. */
XFFL_MUST_USE xffl_status pipe_opt_mode_parse(const char *name, pipe_opt_mode *out);

/* A backend model kept between runs of one process (train --rounds, on every rank): a
 * run with the kept one's model and backend options takes it instead of creating one,
 * and sets its weights and AdamW state as it does a new one's (gradients are zeroed and
 * activations written before use), so the bits are a new model's; a run that ends well
 * leaves its model there. Anything else and the kept one is freed. */
typedef struct {
    kern_model *m;
    ckpt_model_config cfg;
    kern_options ko;    /* ko.backend as given: compared as a string */
} pipe_loop_keep;
void pipe_loop_keep_free(pipe_loop_keep *k); /* NULL-safe; k itself is the caller's */

typedef struct {
    const ckpt_model_config *model;
    pipe_loop_keep *keep;       /* NULL: a model of this run's own */
    const char *backend;        /* kern_options: "cpu", "cuda", NULL = auto */
    int threads;                /* cpu threads per rank (0 = all cores) */
    int recompute;              /* kern_options.recompute: activations of one layer at a time */
    kern_precision precision;   /* kern_options.precision (0: fp32; train passes auto's resolution) */
    int steps;                  /* H */
    int batch, seq_len;         /* global batch B (all ranks together) x T */
    int accumulate;             /* K micro-batches per rank and step (0 = 1); B % (R*K) == 0 */
    pipe_opt_mode optimizer;
    int64_t piece;              /* floats per rank that one exchange moves (a multiple of 65536;
                                 * 0: 1 Mi): the host buffers beside the shard are this big */
    kern_adamw_config adamw;
    int64_t step0;              /* schedule position of step 0 (kern_lr_at(adamw, step0 + s)) */
    int64_t cursor;             /* stream position of step 0's global batch */
    pipe_batch_fn next_batch;
    void *batch_ctx;
    const char *checkpoint_dir; /* NULL: no checkpoints */
    int checkpoint_every;       /* N steps (0: none) */
    const char *checkpoint_tag; /* what the run starts from (base, cursor, settings): resume only the same */
    int halt_after;             /* tests: fail (INTERNAL) right after step N's checkpoint, like a kill */
    int stop_at;                /* tests: the last rank stops itself (SIGSTOP) after step N's backward,
                                 * mid-step, for a test to kill it there whatever the speed */
    const char *label;          /* progress line prefix ("train" when NULL) */
    xffl_log_level progress;    /* level of the step lines (rank 0 only) */
    int progress_every;         /* a step line every N steps (0: H/5 when H >= 10, else every step);
                                 * first (when every step) and last always */
    /* called on every rank after each step (bench: timing, memory); may be NULL */
    void (*on_step)(void *ctx, int step, float loss, double step_seconds);
    void *on_step_ctx;
} pipe_loop_options;

/* AdamW state as full slabs in table order (inner.bin's content). */
typedef struct {
    float *m, *v;   /* table->total floats each, owned by the caller */
    int64_t step;   /* bias-correction counter */
    int present;    /* 1: m, v, step hold state to start from; 0: start from zero */
} pipe_loop_inner;

typedef struct {
    int64_t tokens;         /* steps * B * T (the whole run, resumed steps included) */
    int steps;
    int resumed_after;      /* steps taken from a checkpoint (0: none) */
    int64_t cursor_end;     /* cursor + steps * B */
    double seconds;         /* this call, model creation included */
    double step_seconds_median; /* steady state: the median step of this call after its first */
    double loss_first, loss_last, loss_mean;
    float grad_norm_last;
    int micro_batches;      /* M = R*K */
    int sharded;            /* 1: the host optimizer on a shard; 0 otherwise */
    uint64_t backend_bytes; /* kern_model_bytes of this rank's model */
    char precision[8];      /* kern_model_precision of this rank's model: "fp32", "bf16" */
    uint64_t host_bytes;    /* this rank's host buffers: optimizer shard, gradient exchange */
} pipe_loop_result;

/* Runs o->steps steps from theta (table->total floats, the same on every rank); on
 * return theta holds θ_local on every rank. inner (may be NULL: fresh state, nothing
 * returned) gives the AdamW state to start from when present and receives the state at
 * the end (m, v allocated by the caller). losses (may be NULL) receives step s's loss
 * at [s] for the steps this call ran. USAGE for a batch that M does not divide or bad
 * sizes; INVALID naming the step when the loss or gradient norm is not finite. */
XFFL_MUST_USE xffl_status pipe_loop_run(xffl_comm *comm, const pipe_loop_options *o, float *theta,
                                        pipe_loop_inner *inner, float *losses, pipe_loop_result *r);

/* Removes this rank's checkpoint files of dir (rank 0: the loop-ckpt marker too), for
 * after the round committed. Best effort: a failure is logged. */
void pipe_loop_checkpoint_clear(xffl_comm *comm, const char *dir);

#endif
