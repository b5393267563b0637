/* A local copy of one version (xffl pull): its parts, its INDEX and federation.h5, each
 * object checked against the digest its manifest names, into a plain directory that
 * h5dump (with HDF5_PLUGIN_PATH set to the zstd plugin) opens. */
#ifndef XFFL_PIPE_PULL_H
#define XFFL_PIPE_PULL_H

#include <stdint.h>
#include "common/status.h"
#include "pipelines/round.h"
#include "pipelines/version.h"
#include "storage/store.h"

typedef struct {
    int64_t version;
    char index[PIPE_KEY_MAX]; /* the INDEX's file name in dir */
    int parts;                /* part files copied */
    int federation;           /* 1: federation.h5 copied too (the INDEX names its digest) */
    uint64_t part_bytes;
} pipe_pull_result;

/* Copies version (a number, or -1 for the one LATEST names) into dir (created),
 * announcing the copy (INFO). */
XFFL_MUST_USE xffl_status pipe_pull(store *s, int64_t version, const char *dir, pipe_pull_result *r);

#endif
