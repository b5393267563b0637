/* cli_model_load (contract in cli_model.h). */
#include "cmd/cli_model.h"

#include <string.h>

#include "common/util.h"
#include "pipelines/model.h"

xffl_status cli_model_load(const char *url, const store_options *so, const char *version, ckpt_param_table **t,
                           float **params, pipe_version_ref *ref_out)
{
    *t = NULL;
    *params = NULL;
    long v = -1;
    if (version && strcmp(version, "latest") != 0) XFFL_FORWARD(xffl_parse_long("--version", version, 0, 999999, &v));
    store *s = NULL;
    XFFL_FORWARD(store_open(url, so, &s));
    xffl_status st = pipe_model_load(s, v, t, params, ref_out);
    store_close(s);
    return st;
}
