/* llama2.c legacy import: the reverse of export.c (layout in export.h), so a model
 * that llama2.c's export.py wrote (e.g. Meta's LLaMA-2 weights) can start a federation. */
#include "kernels/export.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Reads tensor `name` (table order) from f into its slice of params. */
static xffl_status read_tensor(FILE *f, const ckpt_param_table *t, float *params, const char *fmt, int layer,
                               const char *path)
{
    char name[CKPT_NAME_MAX];
    snprintf(name, sizeof name, fmt, layer);
    int i = ckpt_param_find(t, name);
    if (i < 0) return xffl_fail(XFFL_ERR_INTERNAL, "llama2c import: tensor %s missing from the table", name);
    size_t n = (size_t)t->params[i].numel;
    if (fread(params + t->params[i].offset, sizeof(float), n, f) != n)
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: short read in tensor %s", path, name);
    return XFFL_OK;
}

xffl_status kern_import_llama2c(const char *bin_path, ckpt_param_table **t_out, float **params_out)
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
    XFFL_CHECK_GOTO(st, read_tensor(f, t, p, "tok_embeddings.weight", 0, bin_path), out);
    for (int k = 0; k < KERN_LLAMA2C_PER_LAYER; k++)
        for (int l = 0; l < c.n_layers; l++)
            XFFL_CHECK_GOTO(st, read_tensor(f, t, p, kern_llama2c_per_layer[k], l, bin_path), out);
    XFFL_CHECK_GOTO(st, read_tensor(f, t, p, "norm.weight", 0, bin_path), out);
    if (fseeko(f, (off_t)(4 * rope), SEEK_CUR) != 0) { /* RoPE tables: ours are computed */
        st = xffl_fail(XFFL_ERR_IO, "%s: seek past the RoPE tables: %s", bin_path, strerror(errno));
        goto out;
    }
    if (shared) {
        int e = ckpt_param_find(t, "tok_embeddings.weight"), o = ckpt_param_find(t, "output.weight");
        memcpy(p + t->params[o].offset, p + t->params[e].offset, (size_t)vd * sizeof *p);
    } else {
        XFFL_CHECK_GOTO(st, read_tensor(f, t, p, "output.weight", 0, bin_path), out);
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
