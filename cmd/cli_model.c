/* cli_model_load (contract in cli_model.h). */
#include "cmd/cli_model.h"

#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

xffl_status cli_model_load(const char *url, const store_options *so, const char *version, ckpt_param_table **t,
                           float **params, pipe_version_ref *ref_out)
{
    *t = NULL;
    *params = NULL;
    long v = -1;
    if (version && strcmp(version, "latest") != 0) XFFL_FORWARD(xffl_parse_long("--version", version, 0, 999999, &v));
    store *s = NULL;
    XFFL_FORWARD(store_open(url, so, &s));
    pipe_federation f;
    pipe_version_ref ref;
    xffl_status st;
    XFFL_CHECK_GOTO(st, pipe_federation_load(s, NULL, &f, NULL), out);
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, v, &ref), out);
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, t), out);
    *params = malloc((size_t)(*t)->total * sizeof(float));
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
    store_close(s);
    return st;
}

