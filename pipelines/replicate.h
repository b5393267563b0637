/* Replication: copies a federation between stores (file:// <-> s3://) as `xffl cp`
 * does. federation.h5, then each version's parts (each checked against its INDEX on
 * the way), its INDEX after them, and LATEST last of all, so a reader of the
 * destination never sees a LATEST whose version is incomplete. Objects are
 * content-named and byte-identical in both stores; one already in the destination
 * with the right size is not copied again, so an interrupted copy can be rerun. */
#ifndef XFFL_PIPE_REPLICATE_H
#define XFFL_PIPE_REPLICATE_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "pipelines/keys.h"
#include "storage/store.h"

typedef struct {
    int one_version; /* 1: only `version`; 0: every version with an INDEX in the source */
    int64_t version; /* with one_version: a number, or -1 for LATEST's */
    int jobs;        /* parts held on local disk at a time (>= 1) */
} pipe_replicate_options;

typedef struct {
    size_t versions;         /* versions asked for (listed, or 1) */
    size_t copied, skipped;  /* objects written / already there */
    uint64_t bytes;          /* bytes written */
    pipe_version_ref latest; /* the destination's LATEST afterwards */
} pipe_replicate_report;

/* Copies from src to dst. A source version with several INDEX objects and none named
 * by LATEST (a lost race) is skipped with a warning; the destination holding another
 * federation.h5 is EXISTS; a source object not matching its digest CORRUPT. One
 * progress line per version copied. */
XFFL_MUST_USE xffl_status pipe_replicate(store *src, store *dst, const pipe_replicate_options *o,
                                         pipe_replicate_report *out);

#endif
