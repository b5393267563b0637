/* pipe_export_hf (contract in export_hf.h). */
#include "pipelines/export_hf.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

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

xffl_status pipe_export_hf(store *s, const ckpt_param_table *t, const float *params, const char *dir,
                           const fmt_hf_export_options *o, pipe_export_hf_result *res)
{
    memset(res, 0, sizeof *res);
    XFFL_RETURN_IF(o->dtype != FMT_ST_F32 && o->dtype != FMT_ST_BF16, XFFL_ERR_USAGE, "--dtype: fp32 or bf16");
    XFFL_FORWARD(xffl_mkdirs(dir));
    fmt_hf_export_options opt = *o;
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, FMT_HF_TOKENIZER);
    if (s) {
        uint64_t size;
        xffl_status st = store_head(s, PIPE_TOKENIZER_KEY, &size, NULL);
        if (st == XFFL_OK) {
            xffl_log(XFFL_LOG_INFO, "copying the federation's %s (%llu bytes)", PIPE_TOKENIZER_KEY,
                     (unsigned long long)size);
            XFFL_FORWARD(store_get_file(s, PIPE_TOKENIZER_KEY, path));
            res->tokenizer = opt.has_tokenizer = 1;
        } else if (st != XFFL_ERR_NOT_FOUND) {
            return st;
        }
    }
    if (!res->tokenizer && t->cfg.vocab_size != 256)
        xffl_log(XFFL_LOG_WARN, "the federation has no %s: %s has no tokenizer for its vocabulary of %d",
                 PIPE_TOKENIZER_KEY, dir, t->cfg.vocab_size);
    return fmt_hf_export(t, params, dir, &opt, &res->files);
}
