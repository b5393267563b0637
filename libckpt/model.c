#include "libckpt/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

typedef struct {
    const char *name;
    ckpt_model_config cfg;
} preset;

static const preset presets[] = {
    {"tiny", {64, 2, 4, 2, 160, 256, 64, 1e-5f, 10000.0f}},
    {"small", {288, 6, 6, 6, 768, 256, 256, 1e-5f, 10000.0f}},
    {"base", {768, 12, 12, 12, 2048, 256, 1024, 1e-5f, 10000.0f}},
    {"1b", {2048, 22, 32, 4, 5632, 32000, 2048, 1e-5f, 10000.0f}},
    {"7b", {4096, 32, 32, 32, 11008, 32000, 4096, 1e-5f, 10000.0f}},
};

const char *ckpt_model_preset_names(void) { return "tiny, small, base, 1b, 7b"; }

xffl_status ckpt_model_preset(const char *name, int vocab_override, ckpt_model_config *cfg)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        if (strcmp(presets[i].name, name) == 0) {
            *cfg = presets[i].cfg;
            if (vocab_override > 0) cfg->vocab_size = vocab_override;
            return ckpt_model_validate(cfg);
        }
    }
    return xffl_fail(XFFL_ERR_USAGE, "unknown model preset '%s' (known: %s)", name, ckpt_model_preset_names());
}

const char *ckpt_model_preset_match(const ckpt_model_config *cfg)
{
    for (size_t i = 0; i < sizeof presets / sizeof presets[0]; i++) {
        ckpt_model_config c = presets[i].cfg;
        c.vocab_size = cfg->vocab_size;
        if (c.dim == cfg->dim && c.n_layers == cfg->n_layers && c.n_heads == cfg->n_heads &&
            c.n_kv_heads == cfg->n_kv_heads && c.hidden_dim == cfg->hidden_dim && c.max_seq_len == cfg->max_seq_len &&
            c.norm_eps == cfg->norm_eps && c.rope_theta == cfg->rope_theta)
            return presets[i].name;
    }
    return NULL;
}

xffl_status ckpt_model_validate(const ckpt_model_config *c)
{
    /* Bounds far above any LLaMA (7b: dim 4096, 32 layers, hidden 11008) that keep every
     * count in int64 and the parameter table a small allocation: a federation.h5 or
     * checkpoint names these numbers, and fuzzing found n_layers = 2^28 passing. */
    XFFL_RETURN_IF(c->dim <= 0 || c->dim > (1 << 16), XFFL_ERR_INVALID, "model config: dim %d outside 1..65536", c->dim);
    XFFL_RETURN_IF(c->n_layers <= 0 || c->n_layers > 1024, XFFL_ERR_INVALID, "model config: n_layers %d outside 1..1024",
                   c->n_layers);
    XFFL_RETURN_IF(c->hidden_dim > (1 << 18), XFFL_ERR_INVALID, "model config: hidden_dim %d above 262144",
                   c->hidden_dim);
    XFFL_RETURN_IF(c->max_seq_len > (1 << 20), XFFL_ERR_INVALID, "model config: max_seq_len %d above 1048576",
                   c->max_seq_len);
    XFFL_RETURN_IF(c->n_heads <= 0 || c->dim % c->n_heads, XFFL_ERR_INVALID,
                   "model config: n_heads %d must divide dim %d", c->n_heads, c->dim);
    XFFL_RETURN_IF((c->dim / c->n_heads) % 2, XFFL_ERR_INVALID, "model config: head size %d must be even (RoPE)",
                   c->dim / c->n_heads);
    XFFL_RETURN_IF(c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads, XFFL_ERR_INVALID,
                   "model config: n_kv_heads %d must divide n_heads %d", c->n_kv_heads, c->n_heads);
    XFFL_RETURN_IF(c->hidden_dim <= 0, XFFL_ERR_INVALID, "model config: hidden_dim %d must be positive", c->hidden_dim);
    XFFL_RETURN_IF(c->vocab_size <= 0 || c->vocab_size > 65536, XFFL_ERR_INVALID,
                   "model config: vocab_size %d must be in [1, 65536] (uint16 tokens)", c->vocab_size);
    XFFL_RETURN_IF(c->max_seq_len <= 0, XFFL_ERR_INVALID, "model config: max_seq_len %d must be positive", c->max_seq_len);
    XFFL_RETURN_IF(!(c->norm_eps > 0) || !(c->rope_theta > 0), XFFL_ERR_INVALID,
                   "model config: norm_eps and rope_theta must be positive");
    return XFFL_OK;
}

const ckpt_slot_info ckpt_slots[CKPT_SLOT_COUNT] = {
    [CKPT_SLOT_ATTN_NORM] = {"layers.%d.attention_norm.weight", CKPT_KIND_NORM, CKPT_DIM_MODEL, CKPT_DIM_NONE, 0},
    [CKPT_SLOT_WQ] = {"layers.%d.attention.wq.weight", CKPT_KIND_MATRIX, CKPT_DIM_MODEL, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_WK] = {"layers.%d.attention.wk.weight", CKPT_KIND_MATRIX, CKPT_DIM_KV, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_WV] = {"layers.%d.attention.wv.weight", CKPT_KIND_MATRIX, CKPT_DIM_KV, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_WO] = {"layers.%d.attention.wo.weight", CKPT_KIND_MATRIX, CKPT_DIM_MODEL, CKPT_DIM_MODEL, 1},
    [CKPT_SLOT_FFN_NORM] = {"layers.%d.ffn_norm.weight", CKPT_KIND_NORM, CKPT_DIM_MODEL, CKPT_DIM_NONE, 0},
    [CKPT_SLOT_W1] = {"layers.%d.feed_forward.w1.weight", CKPT_KIND_MATRIX, CKPT_DIM_HIDDEN, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_W2] = {"layers.%d.feed_forward.w2.weight", CKPT_KIND_MATRIX, CKPT_DIM_MODEL, CKPT_DIM_HIDDEN, 1},
    [CKPT_SLOT_W3] = {"layers.%d.feed_forward.w3.weight", CKPT_KIND_MATRIX, CKPT_DIM_HIDDEN, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_EMBEDDING] = {"tok_embeddings.weight", CKPT_KIND_EMBEDDING, CKPT_DIM_VOCAB, CKPT_DIM_MODEL, 0},
    [CKPT_SLOT_NORM] = {"norm.weight", CKPT_KIND_NORM, CKPT_DIM_MODEL, CKPT_DIM_NONE, 0},
    [CKPT_SLOT_OUTPUT] = {"output.weight", CKPT_KIND_MATRIX, CKPT_DIM_VOCAB, CKPT_DIM_MODEL, 0},
};

static int64_t dim_size(const ckpt_model_config *c, ckpt_dim d)
{
    switch (d) {
    case CKPT_DIM_MODEL: return c->dim;
    case CKPT_DIM_KV: return (int64_t)c->dim / c->n_heads * c->n_kv_heads;
    case CKPT_DIM_HIDDEN: return c->hidden_dim;
    case CKPT_DIM_VOCAB: return c->vocab_size;
    case CKPT_DIM_NONE: break;
    }
    return 1;
}

static void add(ckpt_param_table *t, ckpt_slot slot, int layer)
{
    const ckpt_slot_info *s = &ckpt_slots[slot];
    if (layer <= 0) t->first[slot] = t->count;
    ckpt_param *p = &t->params[t->count++];
    snprintf(p->name, sizeof p->name, s->name, layer);
    p->ndim = s->cols == CKPT_DIM_NONE ? 1 : 2;
    p->shape[0] = dim_size(&t->cfg, s->rows);
    p->shape[1] = dim_size(&t->cfg, s->cols);
    p->numel = p->shape[0] * p->shape[1];
    p->offset = t->total;
    p->layer = layer;
    p->slot = slot;
    p->kind = s->kind;
    t->total += p->numel;
}

xffl_status ckpt_param_table_create(const ckpt_model_config *cfg, ckpt_param_table **out)
{
    XFFL_FORWARD(ckpt_model_validate(cfg));
    ckpt_param_table *t = calloc(1, sizeof *t);
    int max = CKPT_SLOT_COUNT - CKPT_LAYER_SLOTS + CKPT_LAYER_SLOTS * cfg->n_layers;
    if (t) t->params = calloc((size_t)max, sizeof *t->params);
    if (!t || !t->params) {
        ckpt_param_table_free(t);
        return xffl_fail(XFFL_ERR_NOMEM, "parameter table");
    }
    t->cfg = *cfg;
    add(t, CKPT_SLOT_EMBEDDING, -1);
    for (int l = 0; l < cfg->n_layers; l++)
        for (int s = 0; s < CKPT_LAYER_SLOTS; s++) add(t, (ckpt_slot)s, l);
    add(t, CKPT_SLOT_NORM, -1);
    add(t, CKPT_SLOT_OUTPUT, -1);
    *out = t;
    return XFFL_OK;
}

void ckpt_param_table_free(ckpt_param_table *t)
{
    if (!t) return;
    free(t->params);
    free(t);
}

int ckpt_param_find(const ckpt_param_table *t, const char *name)
{
    for (int i = 0; i < t->count; i++)
        if (strcmp(t->params[i].name, name) == 0) return i;
    return -1;
}

int64_t ckpt_param_count_nonembedding(const ckpt_param_table *t)
{
    int64_t n = t->total;
    return n - t->params[ckpt_param_index(t, CKPT_SLOT_EMBEDDING, 0)].numel;
}

/* Draws are xffl_splitmix64 of a counter, so any element of any tensor can be drawn
 * independently of the others (streaming init, no thread-count dependence). */
static double unit_open(uint64_t bits) { return ((double)(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

void ckpt_param_init(const ckpt_param_table *t, int index, uint64_t seed, float *out)
{
    const ckpt_param *p = &t->params[index];
    if (p->kind == CKPT_KIND_NORM) {
        for (int64_t i = 0; i < p->numel; i++) out[i] = 1.0f;
        return;
    }
    double std = 0.02;
    if (ckpt_slots[p->slot].residual_out) std /= sqrt(2.0 * t->cfg.n_layers);
    const uint64_t stream = xffl_splitmix64(seed ^ xffl_splitmix64((uint64_t)index + 1));
    /* Box-Muller on pairs; each pair depends only on (stream, pair index), so threads
     * change nothing but the time (a 7b init is ~3.4e9 log+sincos pairs). */
#pragma omp parallel for schedule(static) if (p->numel >= (1 << 16))
    for (int64_t i = 0; i < p->numel; i += 2) {
        uint64_t a = xffl_splitmix64(stream + 2 * (uint64_t)i), b = xffl_splitmix64(stream + 2 * (uint64_t)i + 1);
        double r = sqrt(-2.0 * log(unit_open(a))), th = 6.283185307179586 * unit_open(b);
        out[i] = (float)(std * r * cos(th));
        if (i + 1 < p->numel) out[i + 1] = (float)(std * r * sin(th));
    }
}
