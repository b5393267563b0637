/* pipe_export_hf (contract in export_hf.h). */
#include "pipelines/export_hf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"
#include "pipelines/federation.h"
#include "pipelines/keys.h"
#include "pipelines/model.h"

xffl_status pipe_export_hf_dtype(const char *name, fmt_st_dtype *d)
{
    if (strcmp(name, "fp32") == 0)
        *d = FMT_ST_F32;
    else if (strcmp(name, "bf16") == 0)
        *d = FMT_ST_BF16;
    else
        return xffl_fail(XFFL_ERR_USAGE, "--dtype %s: fp32 or bf16", name);
    return XFFL_OK;
}

/* dir/tokenizer.model from the store when the federation has one: the one
 * federation.h5 names (init --tokenizer), checked against its digest, or else what the
 * store holds under the key. */
static XFFL_MUST_USE xffl_status copy_tokenizer(store *s, const char *dir, int *copied)
{
    char path[4200];
    uint64_t size;
    pipe_federation f;
    *copied = 0;
    XFFL_FORWARD(pipe_federation_load_latest(s, NULL, &f, NULL));
    xffl_status st = store_head(s, PIPE_TOKENIZER_KEY, &size, NULL);
    if (st == XFFL_ERR_NOT_FOUND && f.tokenizer_sha256[0])
        return xffl_fail(XFFL_ERR_CORRUPT, "%s has no %s, which %s names", store_url(s), PIPE_TOKENIZER_KEY,
                         PIPE_FEDERATION_KEY);
    if (st == XFFL_ERR_NOT_FOUND) return XFFL_OK;
    XFFL_FORWARD(st);
    xffl_log(XFFL_LOG_INFO, "copying the federation's %s (%llu bytes)", PIPE_TOKENIZER_KEY, (unsigned long long)size);
    snprintf(path, sizeof path, "%s/%s", dir, FMT_HF_TOKENIZER);
    XFFL_FORWARD(f.tokenizer_sha256[0] ? store_get_file_verified(s, PIPE_TOKENIZER_KEY, f.tokenizer_sha256, path)
                                       : store_get_file(s, PIPE_TOKENIZER_KEY, path));
    *copied = 1;
    return XFFL_OK;
}

xffl_status pipe_export_hf(store *s, int64_t version, const char *dir, const fmt_hf_export_options *o,
                           pipe_export_hf_result *res)
{
    memset(res, 0, sizeof *res);
    res->version = -1;
    XFFL_RETURN_IF(o->dtype != FMT_ST_F32 && o->dtype != FMT_ST_BF16, XFFL_ERR_USAGE, "--dtype: fp32 or bf16");
    ckpt_param_table *t = NULL;
    float *params = NULL;
    pipe_version_ref ref;
    fmt_hf_export_options opt = *o;
    xffl_status st = pipe_model_load(s, version, &t, &params, &ref);
    if (st == XFFL_OK) st = xffl_mkdirs(dir);
    if (st == XFFL_OK) st = copy_tokenizer(s, dir, &res->tokenizer);
    if (st == XFFL_OK && !res->tokenizer && t->cfg.vocab_size != 256)
        xffl_log(XFFL_LOG_WARN, "the federation has no %s: %s has no tokenizer for its vocabulary of %d",
                 PIPE_TOKENIZER_KEY, dir, t->cfg.vocab_size);
    opt.has_tokenizer = res->tokenizer;
    if (st == XFFL_OK) st = fmt_hf_export(t, params, dir, &opt, &res->files);
    if (st == XFFL_OK) res->version = ref.version;
    free(params);
    ckpt_param_table_free(t);
    return st;
}
