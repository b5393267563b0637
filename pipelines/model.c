/* pipe_model_load, pipe_eval, pipe_sample, pipe_export_llama2c (contracts in model.h). */
#include "pipelines/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "formats/llama2c.h"
#include "kernels/kern.h"
#include "kernels/train.h"
#include "pipelines/federation.h"
#include "pipelines/tokenizer.h"
#include "pipelines/trust.h"
#include "text/loader.h"
#include "text/tokenizer.h"

xffl_status pipe_model_load(store *s, int64_t version, ckpt_param_table **t, float **params, pipe_version_ref *ref_out)
{
    *t = NULL;
    *params = NULL;
    pipe_federation f;
    pipe_version_ref ref;
    xffl_status st;
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, version, &ref), out);
    {
        /* as verify does: federation.h5 against the pin in the default key directory,
         * the INDEX against the aggregator's key it records (nothing for --insecure) */
        char fed_sha[XFFL_SHA256_HEX];
        XFFL_CHECK_GOTO(st, pipe_federation_load_for(s, &ref, &f, fed_sha), out);
        XFFL_CHECK_GOTO(st, pipe_trust_pin(s, NULL, fed_sha), out);
        XFFL_CHECK_GOTO(st, pipe_trust_check_index(s, &f, &ref, NULL), out);
    }
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, t), out);
    *params = xffl_alloc_big((size_t)(*t)->total * sizeof(float));
    if (!*params) {
        st = xffl_fail(XFFL_ERR_NOMEM, "model slab (%lld floats)", (long long)(*t)->total);
        goto out;
    }
    {
        const char *groups[] = {"model"};
        float *slabs[] = {*params};
        XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &ref, *t, 1, groups, slabs, NULL), out);
    }
    if (ref_out) *ref_out = ref;
out:
    if (st != XFFL_OK) {
        free(*params);
        *params = NULL;
        ckpt_param_table_free(*t);
        *t = NULL;
    }
    return st;
}

/* A loaded version on a compute backend. */
typedef struct {
    ckpt_param_table *t;
    float *params;
    kern_model *m;
    pipe_version_ref ref;
} loaded;

static void loaded_free(loaded *l)
{
    kern_model_free(l->m);
    free(l->params);
    ckpt_param_table_free(l->t);
}

/* Puts the loaded parameters on a backend sized for batch x seq_len. */
static XFFL_MUST_USE xffl_status to_backend(loaded *l, const char *backend, int threads, int batch, int seq_len)
{
    kern_options ko = {.backend = backend, .threads = threads, .batch = batch, .seq_len = seq_len};
    XFFL_FORWARD(kern_model_create(&l->t->cfg, &ko, &l->m));
    return kern_set_params(l->m, l->params);
}

/* federation.h5's tokenizer digest ("" byte-level). */
static XFFL_MUST_USE xffl_status federation_tokenizer(store *s, char sha[XFFL_SHA256_HEX])
{
    pipe_federation f;
    XFFL_FORWARD(pipe_federation_load_latest(s, NULL, &f, NULL));
    memcpy(sha, f.tokenizer_sha256, XFFL_SHA256_HEX);
    return XFFL_OK;
}

typedef struct {
    text_loader *sh;
    text_cursor c;
} shard_src;

static XFFL_MUST_USE xffl_status next_batch(void *ctx, int B, int T, int32_t *in, int32_t *tg)
{
    shard_src *s = ctx;
    return text_loader_next(s->sh, &s->c, B, T, in, tg);
}

xffl_status pipe_eval(store *s, int64_t version, const pipe_eval_options *o, pipe_eval_result *r)
{
    loaded l = {0};
    shard_src src = {0};
    long B = o->batch, T = o->seq_len, batches = o->batches;
    *r = (pipe_eval_result){.version = -1};
    xffl_status st = pipe_model_load(s, version, &l.t, &l.params, &l.ref);
    if (st == XFFL_OK && T == 0) T = l.t->cfg.max_seq_len < 256 ? l.t->cfg.max_seq_len : 256;
    if (st == XFFL_OK && T > l.t->cfg.max_seq_len)
        st = xffl_fail(XFFL_ERR_USAGE, "--seq-len %ld exceeds the model's max_seq_len %d", T, l.t->cfg.max_seq_len);
    char tok_sha[XFFL_SHA256_HEX] = "";
    if (st == XFFL_OK) st = federation_tokenizer(s, tok_sha);
    if (st == XFFL_OK) st = text_loader_open(o->data_glob, l.t->cfg.vocab_size, tok_sha, &src.sh);
    if (st == XFFL_OK && batches == 0) {
        /* every sequence once, roughly: tokens / T sequences */
        int64_t seqs = text_loader_tokens(src.sh) / (T + 1);
        batches = seqs / B > 0 ? (long)(seqs / B) : 1;
        if (seqs < B) B = seqs > 0 ? (long)seqs : 1;
    }
    if (st == XFFL_OK) st = to_backend(&l, o->backend, o->threads, (int)B, (int)T);
    if (st == XFFL_OK) {
        xffl_log(XFFL_LOG_INFO, "v%06lld on %s: %ld batches of %ld x %ld tokens", (long long)l.ref.version,
                   o->data_glob, batches, B, T);
        st = kern_eval(l.m, (int)B, (int)T, (int)batches, next_batch, &src, &r->loss);
    }
    if (st == XFFL_OK)
        *r = (pipe_eval_result){.version = l.ref.version, .loss = r->loss, .tokens = (int64_t)batches * B * T,
                                .batch = B, .seq_len = T, .batches = batches};
    text_loader_close(src.sh);
    loaded_free(&l);
    return st;
}

/* With --verbose, the ids in and out: what a test decodes with SentencePiece itself. */
static void log_ids(const char *what, const int32_t *ids, size_t n)
{
    if (!xffl_log_enabled(XFFL_LOG_DEBUG)) return;
    char *line = malloc(n * 12 + 1);
    if (!line) return;
    size_t at = 0;
    line[0] = 0;
    for (size_t i = 0; i < n; i++) at += (size_t)snprintf(line + at, n * 12 + 1 - at, "%s%d", i ? " " : "", ids[i]);
    xffl_log(XFFL_LOG_DEBUG, "%s ids: %s", what, line);
    free(line);
}

/* The ids after the first n_prompt of *all (the prompt's) as text: decode(all) less
 * decode(prompt), so the first sampled piece keeps its leading space and bytes split
 * across the seam come out as SentencePiece writes them in context. */
static XFFL_MUST_USE xffl_status sp_continuation(const text_sp *sp, text_ids *all, size_t n_prompt, char **text,
                                                 size_t *len)
{
    char *full = NULL, *pre = NULL;
    size_t full_len = 0, pre_len = 0;
    XFFL_FORWARD(text_sp_decode(sp, all->v, n_prompt, &pre, &pre_len));
    xffl_status st = text_sp_decode(sp, all->v, all->n, &full, &full_len);
    if (st == XFFL_OK && (full_len < pre_len || memcmp(full, pre, pre_len) != 0))
        st = xffl_fail(XFFL_ERR_INTERNAL, "sample: the decoded prompt is not a prefix of the decoded text");
    if (st == XFFL_OK) {
        memmove(full, full + pre_len, full_len - pre_len + 1);
        *text = full;
        *len = full_len - pre_len;
        full = NULL;
    }
    free(full);
    free(pre);
    return st;
}

xffl_status pipe_sample(store *s, int64_t version, const pipe_sample_options *o, char **text, size_t *len,
                        int64_t *version_out)
{
    loaded l = {0};
    text_sp *sp = NULL;
    text_ids ids = {0};
    char tok_sha[XFFL_SHA256_HEX] = "";
    size_t np = strlen(o->prompt);
    *text = NULL;
    *len = 0;
    xffl_status st = pipe_model_load(s, version, &l.t, &l.params, &l.ref);
    if (st == XFFL_OK) st = federation_tokenizer(s, tok_sha);
    if (st == XFFL_OK && tok_sha[0]) st = pipe_tokenizer_fetch(s, tok_sha, &sp);
    if (st == XFFL_OK && !sp && l.t->cfg.vocab_size != TEXT_BYTE_VOCAB)
        st = xffl_fail(XFFL_ERR_UNSUPPORTED, "sample: vocabulary %d and no tokenizer in federation.h5 "
                       "(init --tokenizer); only the byte-level 256 decodes without one", l.t->cfg.vocab_size);
    /* the prompt, then room for the continuation */
    if (st == XFFL_OK && sp) st = text_sp_encode(sp, o->prompt, np, &ids);
    if (st == XFFL_OK && !sp) {
        for (size_t i = 0; i < np && st == XFFL_OK; i++) st = text_ids_push(&ids, 0);
        if (st == XFFL_OK) text_byte_encode(o->prompt, np, ids.v);
    }
    size_t n_prompt = ids.n;
    for (long i = 0; i < o->tokens && st == XFFL_OK; i++) st = text_ids_push(&ids, 0);
    if (st == XFFL_OK && n_prompt == 0) st = xffl_fail(XFFL_ERR_USAGE, "sample: the prompt encodes to no token");
    if (st == XFFL_OK) st = to_backend(&l, o->backend, o->threads, 1, l.t->cfg.max_seq_len);
    if (st == XFFL_OK) {
        kern_sample_options so = {.temperature = (float)o->temperature, .seed = (uint64_t)o->seed,
                                  .tokens = (int)o->tokens};
        xffl_log(XFFL_LOG_INFO, "v%06lld, %zu prompt %s, %ld to generate (temperature %g)",
                   (long long)l.ref.version, n_prompt, sp ? "tokens" : "bytes", o->tokens, o->temperature);
        log_ids("prompt", ids.v, n_prompt);
        st = kern_sample(l.m, l.t->cfg.max_seq_len, ids.v, (int)n_prompt, &so, ids.v + n_prompt);
    }
    if (st == XFFL_OK) {
        log_ids("sampled", ids.v + n_prompt, (size_t)o->tokens);
        if (sp)
            st = sp_continuation(sp, &ids, n_prompt, text, len);
        else if ((*text = malloc((size_t)o->tokens + 1)) == NULL)
            st = xffl_fail(XFFL_ERR_NOMEM, "sample buffers");
        else
            *len = text_byte_decode(ids.v + n_prompt, (size_t)o->tokens, *text);
    }
    if (st == XFFL_OK) {
        *version_out = l.ref.version;
    } else {
        free(*text);
        *text = NULL;
        *len = 0;
    }
    free(ids.v);
    text_sp_free(sp);
    loaded_free(&l);
    return st;
}

xffl_status pipe_export_llama2c(store *s, int64_t version, const char *out, pipe_export_result *r)
{
    loaded l = {0};
    *r = (pipe_export_result){.version = -1};
    xffl_status st = pipe_model_load(s, version, &l.t, &l.params, &l.ref);
    if (st == XFFL_OK) st = fmt_llama2c_check(&l.t->cfg);
    if (st == XFFL_OK) st = fmt_llama2c_export(l.t, l.params, out);
    if (st == XFFL_OK && l.t->cfg.vocab_size == 256) {
        size_t n = strlen(out);
        if (n > 4 && strcmp(out + n - 4, ".bin") == 0)
            snprintf(r->tokenizer, sizeof r->tokenizer, "%.*s.tokenizer.bin", (int)(n - 4), out);
        else
            snprintf(r->tokenizer, sizeof r->tokenizer, "%s.tokenizer.bin", out);
        st = fmt_llama2c_export_tokenizer(&l.t->cfg, r->tokenizer);
    } else if (st == XFFL_OK) {
        xffl_log(XFFL_LOG_WARN, "vocabulary %d is not byte-level: no tokenizer file written", l.t->cfg.vocab_size);
    }
    if (st == XFFL_OK) r->version = l.ref.version;
    loaded_free(&l);
    return st;
}
