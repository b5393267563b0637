/* Training and inference of a LLaMA-2 model on one compute backend.
 *
 * The model's parameters, gradients, AdamW state and activations live in slabs laid
 * out from the parameter table (libckpt/model.h). Parameters cross this interface
 * only as a host float slab in table order (ckpt_param_table.total floats), which
 * is exactly what checkpoints and deltas hold.
 *
 * Backends: "cpu" (OpenMP + OpenBLAS in fp32, oneDNN in bf16, kernels/cpu/) and "cuda" (cuBLAS + NCCL,
 * kernels/cuda/), behind the vtable in kernels/backend.h. */
#ifndef XFFL_KERN_H
#define XFFL_KERN_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"

typedef struct kern_model kern_model; /* opaque */

/* GEMM precision of the cpu backend (kernels/cpu/bf16.h). fp32: every op in fp32 (the
 * library default, bit-identical to builds before the setting existed). bf16: the linear
 * layers' GEMMs with bf16 operands and fp32 accumulation (oneDNN), everything else fp32;
 * needs a CPU with bf16 units (AVX-512 BF16 or AMX), else UNSUPPORTED. auto: bf16 where
 * the CPU has the units, else fp32 (xffl train's default). The cuda backend takes its
 * precision from XFFL_CUDA_PRECISION and accepts only auto here. */
typedef enum { KERN_PREC_FP32 = 0, KERN_PREC_BF16 = 1, KERN_PREC_AUTO = 2 } kern_precision;

/* "fp32", "bf16", "auto" -> *out; USAGE naming the value otherwise. */
XFFL_MUST_USE xffl_status kern_precision_parse(const char *s, kern_precision *out);
const char *kern_precision_name(kern_precision p);
/* What auto becomes on the cpu backend here: bf16 when kcpu_bf16_available(), else fp32. */
kern_precision kern_precision_auto(void);
/* The CPU's matrix ISA (oneDNN's effective ISA: "avx512_core_amx", ...; "+flash" after
 * it where bf16's attention is the fused AMX one) and oneDNN's version: what a COMMIT
 * records beside the precision. */
const char *kern_cpu_isa(void);
const char *kern_onednn_version(void);

typedef struct {
    const char *backend; /* "cpu", "cuda" or NULL/"auto" (cuda when a GPU is visible) */
    int threads;         /* cpu: OpenMP threads (0 = all cores) */
    int batch;           /* B: sequences per micro-batch */
    int seq_len;         /* T: tokens per sequence (<= cfg.max_seq_len) */
    int device;          /* cuda: device ordinal */
    int recompute;       /* 1: keep only each layer's input, recompute the rest in the backward
                          * (same bits, one more forward); UNSUPPORTED on a backend without it */
    int no_optimizer;    /* 1: no AdamW slabs: the optimizer runs outside (a shard, pipelines/loop.h);
                          * the optimizer calls then fail with USAGE (reset: only the counter) */
    kern_precision precision; /* cpu: fp32 (0, the default), bf16 or auto (above) */
} kern_options;

typedef struct {
    float lr;           /* peak learning rate */
    float min_lr;       /* cosine floor */
    int warmup_steps;
    int total_steps;    /* cosine horizon */
    float beta1, beta2, eps;
    float weight_decay; /* decoupled; not applied to norm gains */
    float grad_clip;    /* global L2 norm clip; 0 = off */
} kern_adamw_config;

/* lr 3e-4, min_lr 3e-5, warmup 10, total 1000, betas 0.9/0.95, eps 1e-8, wd 0.1, clip 1. */
void kern_adamw_default(kern_adamw_config *c);
/* Learning rate at 0-based step: linear warm-up from lr/warmup to lr over warmup_steps,
 * then cosine from lr down to min_lr at total_steps (min_lr after it). */
float kern_lr_at(const kern_adamw_config *c, int step);

/* Creates a model for cfg on the chosen backend with uninitialised parameters.
 * Caller owns *out; kern_model_free accepts NULL. */
XFFL_MUST_USE xffl_status kern_model_create(const ckpt_model_config *cfg, const kern_options *opt, kern_model **out);
void kern_model_free(kern_model *m);
const char *kern_model_backend(const kern_model *m);
/* The precision the model runs: "fp32" or "bf16" (auto resolved; cuda: XFFL_CUDA_PRECISION's). */
const char *kern_model_precision(const kern_model *m);
const ckpt_param_table *kern_model_table(const kern_model *m);

/* Copy parameters in / out (host slab, table order, table->total floats). */
XFFL_MUST_USE xffl_status kern_set_params(kern_model *m, const float *params);
XFFL_MUST_USE xffl_status kern_get_params(kern_model *m, float *params);
/* Gradient slab out (tests, gradient checks). */
XFFL_MUST_USE xffl_status kern_get_grads(kern_model *m, float *grads);
/* Elements [off, off+n) of the gradient slab out, of the parameter slab in: a sharded
 * optimizer moves one piece at a time instead of whole-slab host copies. last = 1 on
 * the last piece of an update (cuda makes its bf16 copy then). USAGE outside the slab. */
XFFL_MUST_USE xffl_status kern_get_grads_range(kern_model *m, int64_t off, int64_t n, float *out);
XFFL_MUST_USE xffl_status kern_set_params_range(kern_model *m, int64_t off, int64_t n, const float *in, int last);
/* The backend's fp32 parameter and gradient slabs (table order, table->total floats)
 * when they live in host memory, so that collectives move a rank's shard in and out in
 * place; both NULL where they do not (cuda). Whoever writes parameters through *params
 * then calls kern_params_written (the backend refreshes what it derives from them: the
 * bf16 copy). */
void kern_host_slabs(kern_model *m, float **params, float **grads);
void kern_params_written(kern_model *m);
/* Weights that forward and backward read only through a bf16 copy (the cpu backend at
 * bf16: every matrix). A sharded optimizer all-gathers those as bf16, half the bytes of
 * fp32, and rounds only its own shard (pipelines/loop.c).
 *   kern_param_bf16: 1 when parameter i (table index) is such a weight; 0 for every i
 *     where the backend keeps no bf16 copies.
 *   kern_round_bf16: the backend's rounding (nearest, ties to even; kernels/cpu/bf16.h).
 *   kern_set_params_bf16_range: the copies of the weights in [off, off+n) from bf16 values
 *     in slab order (entries of other parameters ignored); last = 1 on the last piece of an
 *     update that wrote every such weight, the other parameters having been written in
 *     fp32 through kern_host_slabs. The backend's fp32 values of these weights go stale:
 *     the caller holds the fp32 masters, and kern_get_params returns the stale values
 *     until the next kern_set_params. USAGE outside the slab or without copies. */
int kern_param_bf16(const kern_model *m, int i);
void kern_round_bf16(uint16_t *dst, const float *src, int64_t n);
XFFL_MUST_USE xffl_status kern_set_params_bf16_range(kern_model *m, int64_t off, int64_t n, const uint16_t *in,
                                                     int last);
/* Bytes of the backend's slabs: params, grads, AdamW state, activations. */
uint64_t kern_model_bytes(const kern_model *m);
/* Reset AdamW moments and step counter (the inner state, reset each round). */
XFFL_MUST_USE xffl_status kern_reset_optimizer(kern_model *m);
/* Inner optimizer state (m, v slabs + step) in/out, for --keep-inner-state. */
XFFL_MUST_USE xffl_status kern_get_optimizer(kern_model *m, float *mom, float *var, int64_t *step);
XFFL_MUST_USE xffl_status kern_set_optimizer(kern_model *m, const float *mom, const float *var, int64_t step);

/* inputs, targets: (B,T) token ids. Computes the mean cross-entropy loss.
 * With targets == NULL only logits are computed (inference). */
XFFL_MUST_USE xffl_status kern_forward(kern_model *m, const int32_t *inputs, const int32_t *targets, int B, int T, float *loss);
/* Accumulates gradients of the last forward's loss (zero them with kern_zero_grad). */
XFFL_MUST_USE xffl_status kern_backward(kern_model *m);
XFFL_MUST_USE xffl_status kern_zero_grad(kern_model *m);
/* One AdamW step at schedule position step (0-based: lr = kern_lr_at(c, step)); the
 * bias-correction counter is the optimizer's own (kept in its state). Reports the
 * pre-clip grad norm (grad_norm may be NULL). */
XFFL_MUST_USE xffl_status kern_adamw_step(kern_model *m, const kern_adamw_config *c, int step, float *grad_norm);
/* Logits of the last forward at position (b, t): vocab floats copied into out. The cpu
 * backend turns its logits into their gradient during kern_backward: USAGE after it. */
XFFL_MUST_USE xffl_status kern_logits(kern_model *m, int b, int t, float *out);

#endif
