/* reproduce: recompute version R from version R−1 and the deltas its INDEX names,
 * in a scratch store, and compare with what is stored: every per-tensor digest
 * (model and outer state) and every part's bytes. */
#ifndef XFFL_PIPE_REPRODUCE_H
#define XFFL_PIPE_REPRODUCE_H

#include <stdint.h>
#include "common/status.h"
#include "pipelines/inspect.h"
#include "pipelines/train.h"
#include "storage/store.h"

typedef struct {
    int64_t round;
    char stored_index[PIPE_KEY_MAX];
    char recomputed_index[PIPE_KEY_MAX];
    int n_contributors;
    int tensors_compared;
    int tensors_differ;
    int parts_compared;
    int parts_differ;
    int index_identical; /* whole INDEX bytes equal (implies all the above) */
    double seconds;
} pipe_reproduce_report;

/* Recomputes round R (≥ 1) with `threads` aggregation threads. Each differing tensor
 * or part is logged (ERROR, "differs: ..."). Returns INVALID (exit 65) naming the first
 * differing tensor when any digest differs; NOT_FOUND when version R, R−1 or a delta
 * it used is gone (gc). */
XFFL_MUST_USE xffl_status pipe_reproduce_round(store *s, int64_t round, int threads, const pipe_trust_options *trust,
                                               pipe_reproduce_report *out);

/* Version R's INDEX on LATEST's chain (or the only one in its folder), parsed, with
 * its ref (sha from the bytes). Caller frees *index. */
XFFL_MUST_USE xffl_status pipe_reproduce_find_version(store *s, int64_t version, pipe_version_ref *ref, ckpt_manifest **index);

/* xffl reproduce: pipe_reproduce_round and then, when train is not NULL (train->round is
 * round), pipe_train_reproduce, each success logged (INFO) as soon as it is
 * known. *trep is zeroed when train is NULL or not reached. trust (may be NULL): the
 * federation.h5 pin or --federation digest (pipelines/trust.h). */
XFFL_MUST_USE xffl_status pipe_reproduce(store *s, int64_t round, int threads, const pipe_trust_options *trust,
                                         const pipe_train_options *train,
                                         pipe_reproduce_report *rep,
                                         pipe_train_reproduce_report *trep);

#endif
