/* The aggregation job: wait for a quorum of valid COMMITs for round v+1 built on
 * version v's exact INDEX, reject bad ones, combine with the federation's algorithm,
 * publish version v+1 (parts, INDEX, then LATEST, forward only).
 *
 * The combine step is shared with `reproduce`, which re-runs it from the stored
 * deltas into a scratch store and compares. */
#ifndef XFFL_PIPE_AGGREGATE_H
#define XFFL_PIPE_AGGREGATE_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/algo.h"
#include "pipelines/download.h"
#include "pipelines/federation.h"
#include "pipelines/round.h"
#include "pipelines/trust.h"
#include "pipelines/version.h"
#include "storage/store.h"

/* One validated, decoded contribution. */
typedef struct {
    char facility[64];
    char commit_key[PIPE_KEY_MAX];
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean, seconds;
    uint64_t bytes;   /* stored bytes of its parts */
    uint64_t manifest_bytes; /* and of its COMMIT */
    uint64_t fetched_bytes;  /* downloaded to load it: the COMMIT, and the parts not found locally */
    float *delta;     /* owned: t->total floats */
} pipe_contrib;
void pipe_contrib_clear(pipe_contrib *c); /* frees delta; accepts a zeroed struct */

/* Loads and validates the COMMIT at commit_key for round `round` on base: format,
 * round, facility in the federation, exact base INDEX key, federation digest,
 * encoding, every part's digest, shapes, finite values, tensor digests.
 * A delta that is itself bad returns INVALID or CORRUPT with *bad = 1 and a message
 * naming the COMMIT (the caller writes REJECTED); store failures return with *bad = 0. */
XFFL_MUST_USE xffl_status pipe_contrib_load(store *s, const pipe_federation *f, const char *fed_sha, const ckpt_param_table *t,
                              int64_t round, const pipe_version_ref *base, const char *commit_key, pipe_contrib *c,
                              int *bad);

/* pipe_contrib_load, taking each part from local_dir (NULL: none) instead of the store
 * where a file of the part's name there has the COMMIT's size and digest. */
XFFL_MUST_USE xffl_status pipe_contrib_load_from(store *s, const pipe_federation *f, const char *fed_sha,
                                                 const ckpt_param_table *t, int64_t round, const pipe_version_ref *base,
                                                 const char *commit_key, const char *local_dir, pipe_contrib *c, int *bad);

/* Whether a pending attempt is one aggregate could accept, short of decoding it: its
 * COMMIT loads, its headers pass the same checks as in pipe_contrib_load (round,
 * facility and folder, base INDEX, federation digest, encoding) and every part it names
 * is stored with the size it says. *usable = 0 (the reason logged) when not; a store
 * failure is returned. train uses it so that a forged attempt written first does not
 * make the facility's job a no-op; a well-formed forgery needs signatures to stop. */
XFFL_MUST_USE xffl_status pipe_contrib_usable(store *s, const pipe_federation *f, const char *fed_sha, int64_t round,
                                              const pipe_version_ref *base, const char *commit_key, int *usable);

/* The stored bytes of the COMMIT at commit_key's parts that pipe_contrib_load_from
 * would fetch (a file of the part's name and size in local_dir is not counted; NULL:
 * none) and the COMMIT's own (*manifest), from the COMMIT alone (signature checked as in
 * pipe_contrib_load; nothing else). */
XFFL_MUST_USE xffl_status pipe_contrib_bytes(store *s, const pipe_federation *f, const char *commit_key,
                                             const char *local_dir, uint64_t *parts, uint64_t *manifest);

/* The algorithm's step (pipelines/algo.h) over contribs (sorted by facility, each
 * weighted by its tokens) on base: version round's model into out and its outer state
 * into state (updated in place; zeros at version 0). The one combine the aggregation
 * job, reproduce and a facility's replay (pipelines/download.h) all run. */
XFFL_MUST_USE xffl_status pipe_combine(const pipe_federation *f, int64_t round, int n, const pipe_contrib *contribs,
                                       const float *base, float *const *state, int64_t n_floats, int threads,
                                       float *out, pipe_algo_stats *stats);

/* Fetches base (model and the algorithm's outer state: zeros when the base holds
 * none), applies the algorithm to contribs (sorted by facility) and publishes version
 * base+1 to `to` (the same store normally, a scratch store for reproduce), its INDEX
 * signed by ps->signer, and with ps->with_update the XOR update from base beside it
 * (pipelines/update.h), before LATEST moves. */
typedef struct {
    const pipe_federation *f;
    const char *fed_sha;        /* federation.h5's digest */
    const ckpt_param_table *t;
    int threads;                /* 0: OpenMP default (never the bytes) */
    const xffl_signer *signer;  /* the INDEX's (NULL: unsigned) */
    int with_update;            /* the XOR update from base beside the version */
    /* The aggregation job's own cache (aggregate --state DIR; NULL: none), in the
     * facilities' format (pipelines/download.h): base comes from it when it holds base,
     * the version it wrote last ("cached": nothing downloaded), else by the cheapest
     * route; the new version's model and outer state are kept there after LATEST. */
    const char *state_dir;
} pipe_publish_setting;

typedef struct {
    pipe_version_result version;
    pipe_algo_stats stats;
    pipe_download base; /* how base was read (route, bytes) */
} pipe_publish_result;

XFFL_MUST_USE xffl_status pipe_combine_publish(store *from, store *to, const pipe_publish_setting *ps,
                                               const pipe_version_ref *base, int n, const pipe_contrib *contribs,
                                               pipe_publish_result *res);

typedef struct {
    int64_t round;   /* -1: LATEST+1 */
    double deadline; /* seconds to wait for the quorum; 0 = check once */
    int quorum;      /* 0: the federation's */
    int threads;     /* 0: OpenMP default (never changes the bytes) */
    double poll;     /* seconds between checks; 0 = 2 */
    int no_update;   /* write no XOR update beside the version (facilities that replay) */
    const char *state_dir; /* the job's cache of the version it wrote (pipe_publish_setting) */
    const pipe_trust_options *trust; /* key and pin (NULL: defaults; pipelines/trust.h) */
} pipe_aggregate_options;

typedef struct {
    int64_t version;     /* written, or found already there */
    int already;         /* 1: version `round` existed; nothing was done */
    int n_used;
    char used[PIPE_MAX_FACILITIES][64];
    int n_rejected;
    int latest_written;  /* 0: LATEST already named this version or a later one */
    uint64_t stored_bytes;
    int64_t tokens;      /* this round's */
    double seconds;
    double wait_seconds; /* of seconds, waiting for the quorum (deltas arriving are loaded meanwhile) */
    pipe_download_route base_route; /* how the base version was read */
    uint64_t base_bytes;            /* and what that downloaded */
    pipe_algo_stats stats;
} pipe_aggregate_result;

/* NOT_YET (exit 75) when the quorum is not there by the deadline or when --round R
 * names a round whose base version R−1 does not exist yet; nothing is written then
 * except REJECTED objects for bad deltas. Each accepted and rejected delta is logged
 * (INFO). */
XFFL_MUST_USE xffl_status pipe_aggregate(store *s, const pipe_aggregate_options *o, pipe_aggregate_result *res);

/* n rounds in one process, each exactly as a job of its own (pipe_aggregate, its own
 * --deadline for its quorum): from o->round on, or each time LATEST+1. on_round (may be
 * NULL) gets each round's result; the first failure ends the run, after the rounds
 * before it are written. What a round frees, the next round reuses (xffl_big_keep). */
XFFL_MUST_USE xffl_status pipe_aggregate_rounds(store *s, const pipe_aggregate_options *o, int n,
                                                void (*on_round)(void *ctx, const pipe_aggregate_result *r),
                                                void *ctx);

/* The outer-state groups of an INDEX's "groups" header that are present (helper for
 * reproduce and status): 1 if the version holds group g. */
int pipe_index_has_group(const ckpt_manifest *index, const char *group);

#endif
