#include "libckpt/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

xffl_status ckpt_model_validate(const ckpt_model_config *c)
{
    XFFL_RETURN_IF(c->dim <= 0, XFFL_ERR_INVALID, "model config: dim %d must be positive", c->dim);
    XFFL_RETURN_IF(c->n_layers <= 0, XFFL_ERR_INVALID, "model config: n_layers %d must be positive", c->n_layers);
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

static void add(ckpt_param_table *t, int layer, ckpt_param_kind kind, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#include <stdarg.h>
static void add(ckpt_param_table *t, int layer, ckpt_param_kind kind, int64_t rows, int64_t cols, const char *fmt, ...)
{
    ckpt_param *p = &t->params[t->count++];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(p->name, sizeof p->name, fmt, ap);
    va_end(ap);
    p->ndim = cols > 0 ? 2 : 1;
    p->shape[0] = rows;
    p->shape[1] = cols > 0 ? cols : 1;
    p->numel = p->shape[0] * p->shape[1];
    p->offset = t->total;
    p->layer = layer;
    p->kind = kind;
    t->total += p->numel;
}

xffl_status ckpt_param_table_create(const ckpt_model_config *cfg, ckpt_param_table **out)
{
    XFFL_FORWARD(ckpt_model_validate(cfg));
    ckpt_param_table *t = calloc(1, sizeof *t);
    int max = 3 + 9 * cfg->n_layers;
    if (t) t->params = calloc((size_t)max, sizeof *t->params);
    if (!t || !t->params) {
        ckpt_param_table_free(t);
        return xffl_fail(XFFL_ERR_NOMEM, "parameter table");
    }
    t->cfg = *cfg;
    const int64_t D = cfg->dim, V = cfg->vocab_size, H = cfg->hidden_dim;
    const int64_t kv = D / cfg->n_heads * cfg->n_kv_heads;
    add(t, -1, CKPT_KIND_EMBEDDING, V, D, "tok_embeddings.weight");
    for (int l = 0; l < cfg->n_layers; l++) {
        add(t, l, CKPT_KIND_NORM, D, 0, "layers.%d.attention_norm.weight", l);
        add(t, l, CKPT_KIND_MATRIX, D, D, "layers.%d.attention.wq.weight", l);
        add(t, l, CKPT_KIND_MATRIX, kv, D, "layers.%d.attention.wk.weight", l);
        add(t, l, CKPT_KIND_MATRIX, kv, D, "layers.%d.attention.wv.weight", l);
        add(t, l, CKPT_KIND_MATRIX, D, D, "layers.%d.attention.wo.weight", l);
        add(t, l, CKPT_KIND_NORM, D, 0, "layers.%d.ffn_norm.weight", l);
        add(t, l, CKPT_KIND_MATRIX, H, D, "layers.%d.feed_forward.w1.weight", l);
        add(t, l, CKPT_KIND_MATRIX, D, H, "layers.%d.feed_forward.w2.weight", l);
        add(t, l, CKPT_KIND_MATRIX, H, D, "layers.%d.feed_forward.w3.weight", l);
    }
    add(t, -1, CKPT_KIND_NORM, D, 0, "norm.weight");
    add(t, -1, CKPT_KIND_MATRIX, V, D, "output.weight");
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
    int i = ckpt_param_find(t, "tok_embeddings.weight");
    if (i >= 0) n -= t->params[i].numel;
    return n;
}

/* splitmix64: a counter-based generator, so any element of any tensor can be drawn
 * independently of the others (streaming init, no thread-count dependence). */
static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static double unit_open(uint64_t bits) { return ((double)(bits >> 11) + 0.5) * (1.0 / 9007199254740992.0); }

void ckpt_param_init(const ckpt_param_table *t, int index, uint64_t seed, float *out)
{
    const ckpt_param *p = &t->params[index];
    if (p->kind == CKPT_KIND_NORM) {
        for (int64_t i = 0; i < p->numel; i++) out[i] = 1.0f;
        return;
    }
    double std = 0.02;
    if (strstr(p->name, "attention.wo") || strstr(p->name, "feed_forward.w2"))
        std /= sqrt(2.0 * t->cfg.n_layers);
    const uint64_t stream = splitmix64(seed ^ splitmix64((uint64_t)index + 1));
    /* Box-Muller on pairs; each pair depends only on (stream, pair index), so threads
     * change nothing but the time (a 7b init is ~3.4e9 log+sincos pairs). */
#pragma omp parallel for schedule(static) if (p->numel >= (1 << 16))
    for (int64_t i = 0; i < p->numel; i += 2) {
        uint64_t a = splitmix64(stream + 2 * (uint64_t)i), b = splitmix64(stream + 2 * (uint64_t)i + 1);
        double r = sqrt(-2.0 * log(unit_open(a))), th = 6.283185307179586 * unit_open(b);
        out[i] = (float)(std * r * cos(th));
        if (i + 1 < p->numel) out[i + 1] = (float)(std * r * sin(th));
    }
}
