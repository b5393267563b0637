/* Loading one version's model from a store for eval, sample and export (cmd/ only):
 * the model config from federation.h5, the tensors through pipe_version_fetch (every
 * digest verified). */
#ifndef XFFL_CLI_MODEL_H
#define XFFL_CLI_MODEL_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/version.h"
#include "storage/store.h"

/* version: "latest" or a number. Caller owns *t (ckpt_param_table_free) and *params (free);
 * *ref (may be NULL) receives the version loaded: number, INDEX key and INDEX sha.
 * USAGE naming --version when it is neither. */
xffl_status cli_model_load(const char *url, const store_options *so, const char *version, ckpt_param_table **t,
                           float **params, pipe_version_ref *ref_out);

#endif
