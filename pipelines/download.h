/* A facility's download of version v, the model it trains from (and the aggregation
 * job's of its base), by the cheapest of three routes; every one yields v's exact
 * bits, checked against v's INDEX (docs/design.md "Updates", "Replayed aggregation"
 * and "The version a job already holds"):
 *
 *   replay  v rebuilt here from the cached v−1 (model and the algorithm's outer state)
 *           and the round's deltas that v's INDEX names: the aggregation job's own
 *           combine step (pipelines/algo.h is bit-deterministic on any CPU and thread
 *           count), so the download is the contributors' encoded deltas (int4: 3.6
 *           bits a parameter each) instead of the model (26 bits). Chosen when those
 *           deltas are fewer bytes than the update, and the algorithm's outer state of
 *           v−1 is cached (an algorithm without one, fedavg, needs none).
 *   update  v's model as the XOR of its float bits with the cached v−1's
 *           (pipelines/update.h): model only, so the outer state is then unknown.
 *   full    v's parts, which hold the outer state beside the model: both are kept.
 * Before all three: when the cache holds v itself (a facility's retry of a round, an
 * aggregation job's base: the version it wrote), nothing is downloaded ("cached"; its
 * tensors checked against v's INDEX).
 * A route that fails falls back to the full version with a warning naming the file;
 * nothing is trained from bits that do not match v's INDEX.
 *
 * The facility's own delta is not downloaded back: train keeps the parts it sent in
 * --state DIR/sent/ (the last committed round's only), and a replay takes a part from
 * there when its size and digest are the COMMIT's.
 *
 * Facility state (--state DIR), each pair written file first, then its .ref, both
 * atomically, the .ref removed before the file changes:
 *   base.f32, base.ref    v's model floats (table order, host byte order);
 *                         "v000004 <INDEX key> sha256-64m:<digest of base.f32>\n"
 *                         (xffl_sha256_pieces_hex, 64 MiB pieces: hashed in parallel;
 *                         a plain SHA-256 of the file, as written before, still read)
 *   outer.f32, outer.ref  v's outer optimizer state (the algorithm's groups one after
 *                         another, each in table order), same line format; absent
 *                         when the state is unknown (after an update) or the
 *                         algorithm keeps none
 * A file whose digest is not its .ref's is ignored (warning) and the version is
 * downloaded in full. */
#ifndef XFFL_PIPE_DOWNLOAD_H
#define XFFL_PIPE_DOWNLOAD_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/model.h"
#include "pipelines/federation.h"
#include "pipelines/keys.h"
#include "pipelines/version.h"
#include "storage/store.h"

#define PIPE_DOWNLOAD_SENT_DIR "sent" /* in --state DIR: the parts of the delta sent last */

typedef enum { PIPE_DOWNLOAD_FULL, PIPE_DOWNLOAD_UPDATE, PIPE_DOWNLOAD_REPLAY, PIPE_DOWNLOAD_CACHED } pipe_download_route;
/* "full", "update", "replay", "cached": the COMMIT's download= and the train result line */
const char *pipe_download_route_name(pipe_download_route r);

typedef struct {
    pipe_download_route route;
    uint64_t bytes;           /* downloaded (manifests and parts; every route tried) */
    uint64_t full_bytes;      /* the version's parts, for comparison */
    char via_key[PIPE_KEY_MAX]; /* the UPDATE key (update), "" otherwise */
    char why_full[256];       /* why not a cheaper route ("" when one was taken) */
    int state_known;          /* 1: *state holds v's outer optimizer state */
} pipe_download;

typedef struct {
    const pipe_federation *f; /* its algorithm and aggregator key */
    const char *fed_sha;      /* federation.h5's digest (the deltas' COMMITs name it) */
    const char *state_dir;    /* NULL: always in full, state not kept */
    int threads;              /* replay's combine step (0: OpenMP default; never the bits) */
} pipe_download_options;

/* Floats of outer state the federation's algorithm keeps per model float (diloco 1,
 * fedadam 2, fedavg 0): the state buffer a caller passes holds this x t->total. */
int pipe_download_state_count(const pipe_federation *f);

/* Version ref's model into model (t->total floats) and, when state is not NULL, its
 * outer optimizer state into state (pipe_download_state_count x t->total floats;
 * d->state_known says whether it was learnt), by the cheapest route above. Logs the
 * route and its bytes at INFO. */
XFFL_MUST_USE xffl_status pipe_model_download(store *s, const pipe_version_ref *ref, const pipe_download_options *o,
                                              const ckpt_param_table *t, float *model, float *state,
                                              pipe_download *d);

/* Training ahead (train --ahead): version `version`'s model and outer state replayed
 * from the cache (which must hold version − 1: NOT_FOUND otherwise) and the COMMITs
 * commit_keys[0..k) (sorted by facility), before the aggregation job has published
 * it. Nothing is checked against its INDEX, which does not exist yet:
 * pipe_download_matches does that before anything trained from it is committed. */
XFFL_MUST_USE xffl_status pipe_download_ahead(store *s, int64_t version, const pipe_download_options *o, int k,
                                              const char *const *commit_keys, const ckpt_param_table *t, float *model,
                                              float *state, pipe_download *d);

/* Whether the published version ref is what pipe_download_ahead replayed: its INDEX
 * names exactly commit_keys as contributors and every model and outer-state tensor
 * has model's and state's digest. INVALID or CORRUPT naming the first difference. */
XFFL_MUST_USE xffl_status pipe_download_matches(store *s, const pipe_version_ref *ref, const pipe_download_options *o,
                                                int k, const char *const *commit_keys, const ckpt_param_table *t,
                                                const float *model, const float *state);

/* Keeps model (version ref's) as state_dir's base for the next round, and state (its
 * outer state, n_state x t->total floats) beside it; state NULL or n_state 0: no
 * outer.f32/outer.ref (removed). */
XFFL_MUST_USE xffl_status pipe_base_save(const char *state_dir, const pipe_version_ref *ref, const ckpt_param_table *t,
                                         const float *model, const float *state, int n_state);

#endif
