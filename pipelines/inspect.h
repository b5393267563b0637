/* Whole-store views: which versions are kept, which objects something references,
 * which are orphans; `verify --all` and `gc` are built on one scan.
 *
 * Kept versions: LATEST's, then back along the chain (a version's parent INDEX is
 * the base_index its contributors' COMMITs name; when none says, the only INDEX of
 * the parent's folder). Referenced objects: kept INDEXes and their parts, every
 * COMMIT with its parts, every REJECTED object, LATEST, federation.h5 and
 * tokenizer.model.
 * Orphans: everything else under versions/ and rounds/ (a losing aggregator's
 * version, the parts of a killed upload), plus partial-write leftovers. */
#ifndef XFFL_PIPE_INSPECT_H
#define XFFL_PIPE_INSPECT_H

#include <stdint.h>
#include "common/status.h"
#include "pipelines/round.h"
#include "pipelines/version.h"
#include "storage/store.h"

typedef struct {
    int64_t version;
    char index_key[PIPE_KEY_MAX];
} pipe_kept_version;

typedef struct {
    pipe_version_ref latest;
    int n_kept;
    pipe_kept_version *kept;  /* LATEST first, then parents */
    store_listing all;        /* every key (sorted) */
    char *referenced;         /* all.count flags: 1 referenced, 0 orphan */
    store_listing partial;    /* leftovers of killed writers (always orphans) */
} pipe_store_scan;

/* Scans the whole store (lists once, reads LATEST, kept INDEXes and every COMMIT).
 * A COMMIT that cannot be read or parsed is not an error here: its parts stay
 * unreferenced and verify reports the COMMIT. */
XFFL_MUST_USE xffl_status pipe_store_scan_run(store *s, pipe_store_scan *scan);
void pipe_store_scan_free(pipe_store_scan *scan);

typedef struct {
    int versions_checked;
    int commits_checked;
    int objects_checked;
    int updates_checked;  /* version updates applied (or, without the version before, read) and checked */
    int n_problems;
    int n_orphans;
} pipe_verify_report;

/* verify --all: LATEST and every kept version fully fetched and verified; the
 * tokenizer federation.h5 names fetched, checked and parsed (none there when it names
 * none: pipe_tokenizer_verify); every
 * COMMIT's content name and every object it names re-hashed; REJECTED objects
 * readable. Each problem is logged (ERROR), each orphan too (WARN, "warning: orphan
 * KEY (N bytes)"). Returns CORRUPT (naming the first problem) when there is any
 * problem; orphans alone are OK. */
XFFL_MUST_USE xffl_status pipe_verify_all(store *s, pipe_verify_report *out);

typedef struct {
    int keep;        /* versions to keep, counting LATEST (>= 1) */
    double grace;    /* seconds: objects younger than this are never removed (3600) */
    int dry_run;
} pipe_gc_options;

typedef struct {
    char *key;
    uint64_t bytes;
    int partial;     /* a killed writer's leftover (store_list_partial) */
} pipe_gc_item;

typedef struct {
    int removed;
    uint64_t removed_bytes;
    int kept_young;      /* removable but younger than --grace */
    pipe_gc_item *items; /* the `removed` objects in the order removed (dry run: would be) */
} pipe_gc_report;

/* Removes orphans, versions older than the `keep` newest kept ones, and rounds whose
 * base version is removed (their deltas can no longer be reproduced). Never touches
 * LATEST, federation.h5, tokenizer.model, or anything the kept versions or pending
 * rounds need.
 * out->items lists what was removed, also when an error stops it midway: free it with
 * pipe_gc_report_free either way. */
XFFL_MUST_USE xffl_status pipe_gc(store *s, const pipe_gc_options *o, pipe_gc_report *out);
void pipe_gc_report_free(pipe_gc_report *r);

#endif
