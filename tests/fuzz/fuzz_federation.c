/* libFuzzer target: federation settings as read from federation.h5's attributes
 * (pipelines/federation.c read_all, without HDF5 in front): the struct is built from
 * the input as the attributes would fill it (each number any value its attribute can
 * hold, the facility list, algorithm and encoding names as strings), then validated.
 * Checked beyond "no crash": settings that validate give a model whose parameter
 * table builds, within int64, and agree with the checks' promises (quorum within the
 * facilities, seq_len within max_seq_len, an encoding that exists). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pipelines/federation.h"

typedef struct {
    const uint8_t *p;
    size_t n;
} input;

static int64_t take_int(input *in)
{
    int64_t v = 0;
    size_t k = in->n < 8 ? in->n : 8;
    memcpy(&v, in->p, k);
    in->p += k, in->n -= k;
    /* small values often, so that settings get past the first check */
    return (v & 1) ? v >> 1 : (v >> 1) % 4096;
}

static double take_double(input *in)
{
    int64_t v = take_int(in);
    double d;
    memcpy(&d, &v, sizeof d);
    return (v & 2) ? d : (double)(v % 1000) / 1000.0;
}

static void take_str(input *in, char *out, size_t cap)
{
    size_t k = 0;
    while (k < in->n && in->p[k] && k + 1 < cap) k++;
    memcpy(out, in->p, k);
    out[k] = 0;
    k = k < in->n ? k + 1 : k;
    in->p += k, in->n -= k;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    input in = {data, size};
    pipe_federation f;
    char str[512];
    take_str(&in, str, sizeof str);
    if (pipe_federation_default(str[0] ? str : "tiny", 0, &f) != XFFL_OK) return 0;
    ckpt_model_config *m = &f.model;
    int *ints[] = {&m->dim, &m->n_layers, &m->n_heads, &m->n_kv_heads, &m->hidden_dim, &m->vocab_size,
                   &m->max_seq_len, &f.local_steps, &f.quorum, &f.zstd_level, &f.inner.warmup,
                   &f.inner.total_rounds, &f.batch, &f.seq_len, &f.keep_inner_state, &f.algo.unweighted,
                   &f.algo.nesterov};
    for (size_t i = 0; i < sizeof ints / sizeof *ints && in.n; i++)
        if (in.n && (*in.p++ & 1)) in.n--, *ints[i] = (int)take_int(&in);
        else if (in.n) in.n--;
    double *dbls[] = {&f.inner.lr, &f.inner.min_lr, &f.inner.weight_decay, &f.inner.grad_clip, &f.inner.beta1,
                      &f.inner.beta2, &f.inner.eps, &f.algo.outer_lr, &f.algo.momentum, &f.algo.beta1,
                      &f.algo.beta2, &f.algo.eps, &f.algo.trim, &f.algo.clip_norm};
    for (size_t i = 0; i < sizeof dbls / sizeof *dbls && in.n; i++)
        if (in.n && (*in.p++ & 1)) in.n--, *dbls[i] = take_double(&in);
        else if (in.n) in.n--;
    float *flts[] = {&m->norm_eps, &m->rope_theta};
    for (size_t i = 0; i < 2 && in.n; i++)
        if (in.n && (*in.p++ & 1)) in.n--, *flts[i] = (float)take_double(&in);
        else if (in.n) in.n--;
    f.seed = (uint64_t)take_int(&in);
    f.part_size = (uint64_t)take_int(&in) << 20;
    take_str(&in, str, sizeof str);
    if (str[0] && pipe_federation_set_facilities(&f, str) != XFFL_OK) return 0;
    take_str(&in, str, sizeof str);
    pipe_algo_kind kind;
    if (str[0] && pipe_algo_parse(str, &kind) == XFFL_OK) {
        pipe_algo_config keep = f.algo;
        pipe_federation_set_algo(&f, kind);
        keep.kind = f.algo.kind;
        f.algo = keep;
    }
    take_str(&in, str, sizeof str);
    if (str[0] && ckpt_codec_parse(str, &f.encoding) != XFFL_OK) return 0;
    if (pipe_federation_validate(&f) != XFFL_OK) return 0;
    if (f.quorum < 1 || f.quorum > f.n_facilities || f.seq_len > f.model.max_seq_len || !ckpt_codec_get(f.encoding))
        abort();
    ckpt_param_table *t = NULL;
    if (ckpt_param_table_create(&f.model, &t) != XFFL_OK) abort(); /* validated: it must build */
    if (t->total <= 0) abort();
    ckpt_param_table_free(t);
    return 0;
}
