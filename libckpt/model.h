/* Model configuration, presets, and THE parameter table.
 *
 * The parameter table (name, shape, offset into one contiguous float slab) is the
 * single source of truth for kernels, checkpoints, deltas, aggregation and export
 * (docs/design.md "Parameter table"). Tensor names are Meta's LLaMA names. Order in the slab:
 *   tok_embeddings.weight, then per layer i:
 *     layers.i.attention_norm.weight, .attention.wq/wk/wv/wo.weight,
 *     layers.i.ffn_norm.weight, .feed_forward.w1/w2/w3.weight,
 *   then norm.weight, output.weight.
 * Matrices are [out_features, in_features] row-major, as in PyTorch/Meta. */
#ifndef XFFL_CKPT_MODEL_H
#define XFFL_CKPT_MODEL_H

#include <stdint.h>
#include "common/status.h"

typedef struct {
    int dim;         /* model width D */
    int n_layers;
    int n_heads;
    int n_kv_heads;  /* grouped-query attention: n_heads % n_kv_heads == 0 */
    int hidden_dim;  /* SwiGLU hidden width */
    int vocab_size;
    int max_seq_len;
    float norm_eps;
    float rope_theta;
} ckpt_model_config;

/* Fills cfg from a preset name: tiny, small, base, 1b, 7b. vocab_override > 0
 * replaces the preset's vocabulary (byte-level 256 for tiny/small/base).
 * USAGE error naming the preset if unknown. */
xffl_status ckpt_model_preset(const char *name, int vocab_override, ckpt_model_config *cfg);
/* Checks internal consistency (positive sizes, divisibility); INVALID naming the field. */
xffl_status ckpt_model_validate(const ckpt_model_config *cfg);
/* Comma-separated list of preset names, for --help. */
const char *ckpt_model_preset_names(void);

enum { CKPT_NAME_MAX = 64 };

typedef enum {
    CKPT_KIND_EMBEDDING, /* tok_embeddings */
    CKPT_KIND_NORM,      /* RMSNorm gain, initialised to 1 */
    CKPT_KIND_MATRIX,    /* linear layers */
} ckpt_param_kind;

typedef struct {
    char name[CKPT_NAME_MAX]; /* e.g. "layers.3.attention.wq.weight" */
    int ndim;                 /* 1 or 2 */
    int64_t shape[2];         /* shape[1] == 1 when ndim == 1 */
    int64_t numel;
    int64_t offset;           /* in floats, into the slab */
    int layer;                /* -1 for non-layer tensors */
    ckpt_param_kind kind;
} ckpt_param;

typedef struct {
    ckpt_model_config cfg;
    int count;
    ckpt_param *params; /* owned */
    int64_t total;      /* floats in the slab */
} ckpt_param_table;

/* Builds the table for cfg. Caller owns *out; free with ckpt_param_table_free (accepts NULL). */
xffl_status ckpt_param_table_create(const ckpt_model_config *cfg, ckpt_param_table **out);
void ckpt_param_table_free(ckpt_param_table *t);
/* Index of the tensor named name, or -1. */
int ckpt_param_find(const ckpt_param_table *t, const char *name);
/* Parameters excluding the token embedding table (docs/design.md "Benchmarks": FLOPs = 6N + attention). */
int64_t ckpt_param_count_nonembedding(const ckpt_param_table *t);

/* Deterministic initialisation of one tensor from (seed, tensor index): normals with
 * std 0.02 for matrices (output projections scaled by 1/sqrt(2*n_layers)), ones for
 * norms. Independent of thread count and of which other tensors are initialised,
 * so a 7b init can stream tensor by tensor. */
void ckpt_param_init(const ckpt_param_table *t, int index, uint64_t seed, float *out /* numel */);

#endif
