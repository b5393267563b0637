/* The memory plan of one rank of a train job (`xffl train --dry-run`): the bytes each
 * buffer takes, counted from what kernels/cpu/model.c and kernels/cuda/model.c allocate
 * (same buffers, same rounding) and, on cpu with several ranks or micro-batches, what
 * pipelines/loop.c's host optimizer allocates. The cuda plan with several ranks is the
 * target sharding of docs/design.md "Memory plan" (pipe_memplan.target):
 *
 *   ZeRO 0  every rank holds everything (today's backends; one rank is always this)
 *   ZeRO 1  fp32 master weights and AdamW moments sharded, full fp32 gradients
 *   ZeRO 2  gradients sharded too: reduce-scattered one unit (a layer, or the tensors
 *           outside the layers) at a time as the backward produces them, so one unit's
 *           full fp32 gradient is the only full-size gradient buffer
 *
 * Only the compute weights are replicated: bf16 on cuda (bf16 mode), fp32 on cpu and in
 * cuda's fp32 mode, where the master shard is a slice of them. With recompute, a layer's
 * activations are rebuilt from its input during the backward, so only the L+1 layer
 * inputs are kept and one layer's activations exist at a time. */
#ifndef XFFL_PIPE_MEMPLAN_H
#define XFFL_PIPE_MEMPLAN_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"
#include "libckpt/model.h"
#include "storage/store.h"

typedef enum {
    PIPE_MEM_PARAMS,
    PIPE_MEM_GRADS,
    PIPE_MEM_OPTIMIZER,
    PIPE_MEM_ACTIVATIONS,
    PIPE_MEM_COMM,
    PIPE_MEM_RUNTIME,
    PIPE_MEM_KINDS
} pipe_mem_kind;

/* "parameters", "gradients", "optimizer state", "activations", "communication", "runtime" */
const char *pipe_mem_kind_name(pipe_mem_kind k);

typedef struct {
    ckpt_model_config model;
    const char *backend;    /* "cpu" or "cuda" */
    int fp32;               /* cuda: fp32 GEMMs (XFFL_CUDA_PRECISION=fp32): no bf16 copy, no staging */
    int attn_reference;     /* cuda bf16: the three-GEMM attention (XFFL_CUDA_ATTENTION=reference) */
    int cpu_bf16;           /* cpu: the bf16 precision (kern_options.precision): its bf16 copies */
    int cpu_flash;          /* cpu bf16: the fused AMX attention (kcpu_bf16_flash_available): no T^2 buffers */
    int ranks;              /* >= 1 */
    int zero;               /* 0, 1, 2 (one rank: 0 whatever is asked) */
    int recompute;          /* 1: per-layer activation recomputation */
    int batch, seq_len;     /* one rank's micro-batch, B x T */
    int accumulate;         /* micro-batches per rank and step (0 = 1): cpu, the loop's host buffers */
    int threads;            /* cpu: OpenMP threads (the attention backward's per-thread T x T scratch) */
    uint64_t reserve;       /* runtime bytes xffl does not allocate itself (CUDA context, cuBLAS, NCCL) */
    uint64_t device_memory; /* bytes one rank may use; 0: no verdict */
} pipe_memplan_config;

enum { PIPE_MEMPLAN_MAX_ITEMS = 40, PIPE_MEMPLAN_WHAT_MAX = 96 };

/* One line of the plan: count buffers of `each` bytes (count > 1: one per layer). */
typedef struct {
    pipe_mem_kind kind;
    char what[PIPE_MEMPLAN_WHAT_MAX];
    int count;
    uint64_t each;
} pipe_mem_item;

typedef struct {
    pipe_memplan_config cfg; /* as planned (zero forced to 0 for one rank) */
    char model[32];          /* the preset's name (pipe_train_plan), or empty */
    int64_t params;          /* parameters of the model */
    int64_t shard;           /* parameters in this rank's shard (params when zero == 0) */
    int64_t unit;            /* the largest reduce-scatter unit, in parameters */
    int n_items;
    pipe_mem_item items[PIPE_MEMPLAN_MAX_ITEMS];
    uint64_t kind_bytes[PIPE_MEM_KINDS];
    uint64_t total;
    int fits;                /* 1 fits, 0 does not, -1 no device_memory given */
    int target;              /* 1: the target ZeRO-2 layout (cuda, several ranks), not what the loop
                              * allocates today; 0: the buffers the code allocates */
} pipe_memplan;

/* Plans c into *out. USAGE naming the setting when ranks, zero, B, T (T above the model's
 * max_seq_len), threads or the backend is out of range. */
XFFL_MUST_USE xffl_status pipe_memplan_compute(const pipe_memplan_config *c, pipe_memplan *out);

/* What `xffl train --dry-run` was given; 0 / NULL / -1 fields take the defaults. */
typedef struct {
    const char *preset;     /* the model without a store; NULL: federation.h5's */
    const char *backend;    /* "cpu" (default, also for NULL and "auto") or "cuda" */
    int ranks;              /* 1 */
    int zero;               /* -1: 2 with several ranks */
    int recompute;
    int batch;              /* 0: the federation's batch over ranks x accumulate, rounded up */
    int seq_len;            /* 0: the federation's */
    int accumulate;         /* micro-batches per rank per step (1) */
    int threads;            /* cpu: 0 = all cores */
    kern_precision precision; /* cpu: fp32 (0), bf16, auto (what this CPU's auto is) */
    int64_t reserve;        /* -1: 1 GiB on cuda, 0 on cpu */
    uint64_t device_memory; /* 0: cpu: this machine's memory over the ranks; cuda: required */
} pipe_train_plan_options;

void pipe_train_plan_options_default(pipe_train_plan_options *o);
/* The plan of one rank of a train job: the model, batch and sequence length from the
 * store's federation.h5 (s != NULL) or from o->preset with the federation defaults,
 * then o's overrides. USAGE when neither a store nor a preset is given, or cuda without
 * device_memory. */
XFFL_MUST_USE xffl_status pipe_train_plan(store *s, const pipe_train_plan_options *o, pipe_memplan *out);

#endif
