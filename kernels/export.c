/* llama2.c legacy export (layout in export.h). */
#include "kernels/export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

const char *const kern_llama2c_per_layer[KERN_LLAMA2C_PER_LAYER] = {
    "layers.%d.attention_norm.weight",   "layers.%d.attention.wq.weight",     "layers.%d.attention.wk.weight",
    "layers.%d.attention.wv.weight",     "layers.%d.attention.wo.weight",     "layers.%d.ffn_norm.weight",
    "layers.%d.feed_forward.w1.weight", "layers.%d.feed_forward.w2.weight", "layers.%d.feed_forward.w3.weight",
};

xffl_status kern_llama2c_check(const ckpt_model_config *cfg)
{
    if (cfg->rope_theta != 10000.0f)
        return xffl_fail(XFFL_ERR_INVALID,
                         "llama2c export: rope_theta is %g, but llama2.c's run fixes it at 10000", cfg->rope_theta);
    if (cfg->norm_eps != 1e-5f)
        return xffl_fail(XFFL_ERR_INVALID, "llama2c export: norm_eps is %g, but llama2.c's run fixes it at 1e-5",
                         cfg->norm_eps);
    return XFFL_OK;
}

static xffl_status put(FILE *f, const void *p, size_t bytes, const char *path, const char *what)
{
    if (fwrite(p, 1, bytes, f) != bytes)
        return xffl_fail(XFFL_ERR_IO, "%s: writing %s: %s", path, what, strerror(errno));
    return XFFL_OK;
}

static xffl_status tensor(FILE *f, const ckpt_param_table *t, const float *params, const char *fmt, int layer,
                          const char *path)
{
    char name[CKPT_NAME_MAX];
    snprintf(name, sizeof name, fmt, layer);
    int i = ckpt_param_find(t, name);
    if (i < 0) return xffl_fail(XFFL_ERR_INTERNAL, "llama2c export: tensor %s missing from the table", name);
    return put(f, params + t->params[i].offset, (size_t)t->params[i].numel * sizeof(float), path, name);
}

/* Writes to path.tmp, then fsync and rename: a reader never sees half a file. */
static xffl_status finish(FILE *f, const char *tmp, const char *path, xffl_status st)
{
    if (st == XFFL_OK && fflush(f) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == XFFL_OK && fsync(fileno(f)) != 0) st = xffl_fail(XFFL_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    if (fclose(f) != 0 && st == XFFL_OK) st = xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == XFFL_OK && rename(tmp, path) != 0)
        st = xffl_fail(XFFL_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (st != XFFL_OK) unlink(tmp);
    return st;
}

xffl_status kern_export_llama2c(const ckpt_param_table *t, const float *params, const char *bin_path)
{
    const ckpt_model_config *c = &t->cfg;
    XFFL_FORWARD(kern_llama2c_check(c));
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", bin_path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return xffl_fail(XFFL_ERR_IO, "%s: %s", tmp, strerror(errno));
    int32_t hdr[7] = {c->dim, c->hidden_dim, c->n_layers, c->n_heads, c->n_kv_heads, -c->vocab_size, c->max_seq_len};
    xffl_status st = put(f, hdr, sizeof hdr, bin_path, "header");
    if (st == XFFL_OK) st = tensor(f, t, params, "tok_embeddings.weight", 0, bin_path);
    for (int k = 0; k < KERN_LLAMA2C_PER_LAYER && st == XFFL_OK; k++)
        for (int l = 0; l < c->n_layers && st == XFFL_OK; l++)
            st = tensor(f, t, params, kern_llama2c_per_layer[k], l, bin_path);
    if (st == XFFL_OK) st = tensor(f, t, params, "norm.weight", 0, bin_path);
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
    if (st == XFFL_OK) st = tensor(f, t, params, "output.weight", 0, bin_path);
    return finish(f, tmp, bin_path, st);
}

xffl_status kern_export_llama2c_tokenizer(const ckpt_model_config *cfg, const char *tok_path)
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
