/* llama2.c legacy checkpoint export and import (layout in llama2c.h). */
#include "formats/llama2c.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file's per-layer order (all layers' first tensor, then all layers' second, ...).
 * It is also ckpt_slot's order, but it is the file format's, so it is spelled out. */
static const ckpt_slot llama2c_layer_order[CKPT_LAYER_SLOTS] = {
    CKPT_SLOT_ATTN_NORM, CKPT_SLOT_WQ, CKPT_SLOT_WK, CKPT_SLOT_WV, CKPT_SLOT_WO,
    CKPT_SLOT_FFN_NORM,  CKPT_SLOT_W1, CKPT_SLOT_W2, CKPT_SLOT_W3,
};

xffl_status fmt_llama2c_check(const ckpt_model_config *cfg)
{
    if (cfg->rope_theta != 10000.0f)
        return xffl_fail(XFFL_ERR_INVALID,
                         "llama2c export: rope_theta is %g, but llama2.c's run fixes it at 10000", cfg->rope_theta);
    if (cfg->norm_eps != 1e-5f)
        return xffl_fail(XFFL_ERR_INVALID, "llama2c export: norm_eps is %g, but llama2.c's run fixes it at 1e-5",
                         cfg->norm_eps);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status put(FILE *f, const void *p, size_t bytes, const char *path, const char *what)
{
    if (fwrite(p, 1, bytes, f) != bytes)
        return xffl_fail(XFFL_ERR_IO, "%s: writing %s: %s", path, what, strerror(errno));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status put_tensor(FILE *f, const ckpt_param_table *t, const float *params, ckpt_slot slot, int layer,
                              const char *path)
{
    const ckpt_param *p = &t->params[ckpt_param_index(t, slot, layer)];
    return put(f, params + p->offset, (size_t)p->numel * sizeof(float), path, p->name);
}

/* Writes to path.tmp, then fsync and rename: a reader never sees half a file. */
static XFFL_MUST_USE xffl_status finish(FILE *f, const char *tmp, const char *path, xffl_status st)
{
    if (st == XFFL_OK && fflush(f) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == XFFL_OK && fsync(fileno(f)) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    if (fclose(f) != 0 && st == XFFL_OK) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == XFFL_OK && rename(tmp, path) != 0)
        st = xffl_fail(XFFL_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (st != XFFL_OK) unlink(tmp);
    return st;
}

xffl_status fmt_llama2c_export(const ckpt_param_table *t, const float *params, const char *bin_path)
{
    const ckpt_model_config *c = &t->cfg;
    XFFL_FORWARD(fmt_llama2c_check(c));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", bin_path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return xffl_fail(XFFL_ERR_IO, "%s: %s", tmp, strerror(errno));
    int32_t hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, -c->vocab_size, c->max_seq_len};
    xffl_status st = put(f, hdr, sizeof hdr, bin_path, "header");
    if (st == XFFL_OK) st = put_tensor(f, t, params, CKPT_SLOT_EMBEDDING, 0, bin_path);
    for (int k = 0; k < CKPT_LAYER_SLOTS && st == XFFL_OK; k++)
        for (int l = 0; l < c->n_layers && st == XFFL_OK; l++)
            st = put_tensor(f, t, params, llama2c_layer_order[k], l, bin_path);
    if (st == XFFL_OK) st = put_tensor(f, t, params, CKPT_SLOT_NORM, 0, bin_path);
    int hd = c->dim / c->n_heads, half = hd / 2;
    float *fc = malloc((size_t)c->max_seq_len * half * sizeof *fc);
    if (!fc && st == XFFL_OK) st = xffl_fail(XFFL_ERR_NOMEM, "llama2c export: rope table");
    for (int part = 0; part < 2 && st == XFFL_OK; part++) {
        for (int p = 0; p < c->max_seq_len; p++)
            for (int i = 0; i < half; i++) {
                double a = p * pow(10000.0, -2.0 * i / hd);
                fc[(size_t)p * half + i] = (float)(part == 0 ? cos(a) : sin(a));
            }
        st = put(f, fc, (size_t)c->max_seq_len * half * sizeof *fc, bin_path, part ? "freq_cis_imag" : "freq_cis_real");
    }
    free(fc);
    if (st == XFFL_OK) st = put_tensor(f, t, params, CKPT_SLOT_OUTPUT, 0, bin_path);
    return finish(f, tmp, bin_path, st);
}

xffl_status fmt_llama2c_export_tokenizer(const ckpt_model_config *cfg, const char *tok_path)
{
    if (cfg->vocab_size != 256)
        return xffl_fail(XFFL_ERR_UNSUPPORTED,
                         "llama2c tokenizer: vocabulary %d is not the byte-level 256; bring that tokenizer's own file",
                         cfg->vocab_size);
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", tok_path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return xffl_fail(XFFL_ERR_IO, "%s: %s", tmp, strerror(errno));
    int32_t max_len = 1, len = 1;
    float score = 0;
    xffl_status st = put(f, &max_len, 4, tok_path, "max_token_length");
    for (int i = 0; i < 256 && st == XFFL_OK; i++) {
        unsigned char b = (unsigned char)i;
        st = put(f, &score, 4, tok_path, "score");
        if (st == XFFL_OK) st = put(f, &len, 4, tok_path, "length");
        if (st == XFFL_OK) st = put(f, &b, 1, tok_path, "piece");
    }
    return finish(f, tmp, tok_path, st);
}

/* Reads the tensor (slot, layer) from f into its slice of params. */
static XFFL_MUST_USE xffl_status read_tensor(FILE *f, const ckpt_param_table *t, float *params, ckpt_slot slot, int layer,
                               const char *path)
{
    const ckpt_param *p = &t->params[ckpt_param_index(t, slot, layer)];
    size_t n = (size_t)p->numel;
    if (fread(params + p->offset, sizeof(float), n, f) != n)
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: short read in tensor %s", path, p->name);
    return XFFL_OK;
}

xffl_status fmt_llama2c_import(const char *bin_path, ckpt_param_table **t_out, float **params_out)
{
    *t_out = NULL;
    *params_out = NULL;
    FILE *f = fopen(bin_path, "rb");
    if (!f) return xffl_fail(errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", bin_path, strerror(errno));
    struct stat sb;
    int32_t h[7];
    xffl_status st = XFFL_OK;
    if (fstat(fileno(f), &sb) != 0 || fread(h, sizeof h, 1, f) != 1) {
        fclose(f);
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: no llama2.c header (7 int32)", bin_path);
    }
    /* header: dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab (negative: own classifier), max_seq_len */
    ckpt_model_config c = {.dim = h[0], .hidden_dim = h[1], .n_layers = h[2], .n_heads = h[3], .n_kv_heads = h[4],
                           .vocab_size = h[5] < 0 ? -h[5] : h[5], .max_seq_len = h[6], .norm_eps = 1e-5f,
                           .rope_theta = 10000.0f};
    if (c.dim <= 0 || c.hidden_dim <= 0 || c.n_layers <= 0 || c.n_heads <= 0 || c.n_kv_heads <= 0 ||
        c.vocab_size <= 0 || c.max_seq_len <= 0 || c.dim % c.n_heads || c.n_heads % c.n_kv_heads ||
        (c.dim / c.n_heads) % 2) {
        fclose(f);
        return xffl_fail(XFFL_ERR_CORRUPT,
                         "%s: not a llama2.c checkpoint header (dim %d, hidden %d, layers %d, heads %d/%d, vocab %d, "
                         "max_seq_len %d)",
                         bin_path, h[0], h[1], h[2], h[3], h[4], h[5], h[6]);
    }
    int shared = h[5] > 0; /* positive vocab: the classifier is tok_embeddings */
    ckpt_param_table *t = NULL;
    float *p = NULL;
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&c, &t), out);
    int half = c.dim / c.n_heads / 2;
    int64_t vd = (int64_t)c.vocab_size * c.dim, rope = 2 * (int64_t)c.max_seq_len * half;
    int64_t want = (int64_t)sizeof h + 4 * (t->total - (shared ? vd : 0) + rope);
    if ((int64_t)sb.st_size != want) {
        st = xffl_fail(XFFL_ERR_CORRUPT, "%s: %lld bytes, but its header (dim %d, %d layers, vocab %d) needs %lld",
                       bin_path, (long long)sb.st_size, c.dim, c.n_layers, h[5], (long long)want);
        goto out;
    }
    p = malloc((size_t)t->total * sizeof *p);
    if (!p) {
        st = xffl_fail(XFFL_ERR_NOMEM, "llama2c import: %lld parameters", (long long)t->total);
        goto out;
    }
    XFFL_CHECK_GOTO(st, read_tensor(f, t, p, CKPT_SLOT_EMBEDDING, 0, bin_path), out);
    for (int k = 0; k < CKPT_LAYER_SLOTS; k++)
        for (int l = 0; l < c.n_layers; l++)
            XFFL_CHECK_GOTO(st, read_tensor(f, t, p, llama2c_layer_order[k], l, bin_path), out);
    XFFL_CHECK_GOTO(st, read_tensor(f, t, p, CKPT_SLOT_NORM, 0, bin_path), out);
    if (fseeko(f, (off_t)(4 * rope), SEEK_CUR) != 0) { /* RoPE tables: ours are computed */
        st = xffl_fail(XFFL_ERR_IO, "%s: seek past the RoPE tables: %s", bin_path, strerror(errno));
        goto out;
    }
    if (shared) {
        int e = ckpt_param_index(t, CKPT_SLOT_EMBEDDING, 0), o = ckpt_param_index(t, CKPT_SLOT_OUTPUT, 0);
        memcpy(p + t->params[o].offset, p + t->params[e].offset, (size_t)vd * sizeof *p);
    } else {
        XFFL_CHECK_GOTO(st, read_tensor(f, t, p, CKPT_SLOT_OUTPUT, 0, bin_path), out);
    }
    for (int64_t i = 0; i < t->total; i++)
        if (!isfinite(p[i])) {
            st = xffl_fail(XFFL_ERR_CORRUPT, "%s: value %lld is not finite", bin_path, (long long)i);
            goto out;
        }
out:
    fclose(f);
    if (st != XFFL_OK) {
        free(p);
        ckpt_param_table_free(t);
        return st;
    }
    *t_out = t;
    *params_out = p;
    return XFFL_OK;
}
