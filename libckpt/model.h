/* Model configuration, presets, and THE parameter table.
 *
 * The parameter table (name, shape, offset into one contiguous float slab) is the
 * single source of truth for kernels, checkpoints, deltas, aggregation and export
 * (docs/design.md "Parameter table"). Tensor names are Meta's LLaMA names (ckpt_slots). Order in the slab:
 *   tok_embeddings.weight, then per layer i its slots in ckpt_slot order
 *     (layers.i.attention_norm.weight, ... layers.i.feed_forward.w3.weight),
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
XFFL_MUST_USE xffl_status ckpt_model_preset(const char *name, int vocab_override, ckpt_model_config *cfg);
/* The preset cfg is, its vocabulary aside (--vocab overrides it), or NULL. */
const char *ckpt_model_preset_match(const ckpt_model_config *cfg);
/* Checks internal consistency (positive sizes, divisibility); INVALID naming the field. */
XFFL_MUST_USE xffl_status ckpt_model_validate(const ckpt_model_config *cfg);
/* Comma-separated list of preset names, for --help. */
const char *ckpt_model_preset_names(void);

enum { CKPT_NAME_MAX = 64 };

typedef enum {
    CKPT_KIND_EMBEDDING, /* tok_embeddings */
    CKPT_KIND_NORM,      /* RMSNorm gain, initialised to 1 */
    CKPT_KIND_MATRIX,    /* linear layers */
} ckpt_param_kind;

/* A tensor is a slot and a layer. The per-layer slots come first, in their slab order
 * within a layer (wq, wk, wv stay adjacent: the CPU backend runs them as one [Dq+2Dkv, D]
 * matrix), then the slots outside the layers. Backends and exporters index tensors by
 * slot (ckpt_param_index); ckpt_slots is the one home of their names and shapes. */
typedef enum {
    CKPT_SLOT_ATTN_NORM,
    CKPT_SLOT_WQ,
    CKPT_SLOT_WK,
    CKPT_SLOT_WV,
    CKPT_SLOT_WO,
    CKPT_SLOT_FFN_NORM,
    CKPT_SLOT_W1,
    CKPT_SLOT_W2,
    CKPT_SLOT_W3,
    CKPT_LAYER_SLOTS, /* per-layer slots are [0, CKPT_LAYER_SLOTS) */
    CKPT_SLOT_EMBEDDING = CKPT_LAYER_SLOTS,
    CKPT_SLOT_NORM,   /* the final RMSNorm */
    CKPT_SLOT_OUTPUT, /* the classifier, never tied to the embedding */
    CKPT_SLOT_COUNT
} ckpt_slot;

/* A tensor dimension in terms of the config. */
typedef enum {
    CKPT_DIM_NONE,   /* no second dimension: a vector */
    CKPT_DIM_MODEL,  /* dim */
    CKPT_DIM_KV,     /* n_kv_heads * head size */
    CKPT_DIM_HIDDEN, /* hidden_dim */
    CKPT_DIM_VOCAB,  /* vocab_size */
} ckpt_dim;

typedef struct {
    const char *name; /* Meta's name; a per-layer slot's has one %d for the layer */
    ckpt_param_kind kind;
    ckpt_dim rows, cols;
    int residual_out; /* adds into the residual stream: init std scaled by 1/sqrt(2*n_layers) */
} ckpt_slot_info;

extern const ckpt_slot_info ckpt_slots[CKPT_SLOT_COUNT];

typedef struct {
    char name[CKPT_NAME_MAX]; /* e.g. "layers.3.attention.wq.weight" */
    int ndim;                 /* 1 or 2 */
    int64_t shape[2];         /* shape[1] == 1 when ndim == 1 */
    int64_t numel;
    int64_t offset;           /* in floats, into the slab */
    int layer;                /* -1 for non-layer tensors */
    ckpt_slot slot;
    ckpt_param_kind kind;
} ckpt_param;

typedef struct {
    ckpt_model_config cfg;
    int count;
    ckpt_param *params; /* owned */
    int64_t total;      /* floats in the slab */
    int first[CKPT_SLOT_COUNT]; /* index of each slot's tensor (layer 0's for a per-layer slot) */
} ckpt_param_table;

/* Builds the table for cfg. Caller owns *out; free with ckpt_param_table_free (accepts NULL). */
XFFL_MUST_USE xffl_status ckpt_param_table_create(const ckpt_model_config *cfg, ckpt_param_table **out);
void ckpt_param_table_free(ckpt_param_table *t);
/* Index of the tensor named name, or -1. */
int ckpt_param_find(const ckpt_param_table *t, const char *name);
/* Index of slot's tensor in layer (ignored for the slots outside the layers); layer must
 * be in [0, n_layers) for a per-layer slot. */
static inline int ckpt_param_index(const ckpt_param_table *t, ckpt_slot slot, int layer)
{
    return t->first[slot] + (slot < CKPT_LAYER_SLOTS ? layer * CKPT_LAYER_SLOTS : 0);
}
/* Parameters excluding the token embedding table (docs/design.md "Benchmarks": FLOPs = 6N + attention). */
int64_t ckpt_param_count_nonembedding(const ckpt_param_table *t);

/* Deterministic initialisation of one tensor from (seed, tensor index): normals with
 * std 0.02 for matrices (output projections scaled by 1/sqrt(2*n_layers)), ones for
 * norms. Independent of thread count and of which other tensors are initialised,
 * so a 7b init can stream tensor by tensor. */
void ckpt_param_init(const ckpt_param_table *t, int index, uint64_t seed, float *out /* numel */);

#endif
