/* Loading one version's model from a store by URL: what cmd/cmd_init.c still calls for
 * --from. The job itself is pipe_model_load (pipelines/model.h); this wrapper goes once
 * init calls that directly. */
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
XFFL_MUST_USE xffl_status cli_model_load(const char *url, const store_options *so, const char *version,
                                         ckpt_param_table **t, float **params, pipe_version_ref *ref_out);

#endif
