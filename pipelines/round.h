/* Rounds in a store: attempt keys, COMMIT and REJECTED objects, attempt states.
 *
 *   rounds/r000005/<facility>/a<N>/part-000-<12hex>.h5   delta parts (libckpt/delta.h)
 *   rounds/r000005/<facility>/a<N>/COMMIT-<12hex>        manifest, written last
 *   rounds/r000005/<facility>/a<N>/REJECTED-<12hex>      "reason=…" written by aggregate
 *
 * Attempt states: partial (objects but no COMMIT: a train job died during upload),
 * pending (COMMIT, no REJECTED), rejected, accepted (its COMMIT is a contributor line
 * of version <round>'s INDEX). A facility trains a new attempt a<N+1> only after a<N>
 * was rejected; a partial a<N> is redone under the same number. */
#ifndef XFFL_PIPE_ROUND_H
#define XFFL_PIPE_ROUND_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/manifest.h"
#include "pipelines/version.h"
#include "storage/store.h"


typedef enum { PIPE_ATTEMPT_PARTIAL, PIPE_ATTEMPT_PENDING, PIPE_ATTEMPT_REJECTED, PIPE_ATTEMPT_ACCEPTED } pipe_attempt_state;
/* "partial", "pending", "rejected", "accepted". */
const char *pipe_attempt_state_name(pipe_attempt_state s);

typedef struct {
    char facility[64];
    int attempt;
    pipe_attempt_state state;
    char commit_key[PIPE_KEY_MAX];   /* "" when none; the bytewise-first when several */
    char rejected_key[PIPE_KEY_MAX]; /* "" when none */
    int n_objects;                   /* every object under the attempt folder */
    uint64_t bytes;                  /* their sizes */
} pipe_attempt;

typedef struct {
    pipe_attempt *items; /* sorted by facility, then attempt number */
    int count;
} pipe_round_listing;

/* Every attempt of round r found under rounds/r%06d/. accepted_index (may be NULL) is
 * the INDEX of version r when it exists: attempts it names become ACCEPTED. Folders
 * that do not parse as <facility>/a<N>/ are skipped (gc reports them as orphans). An
 * attempt is REJECTED only by a REJECTED object that passes pipe_rejected_check for
 * its COMMIT; any other is ignored (logged), so a hand-written one stops nothing. */
XFFL_MUST_USE xffl_status pipe_round_list(store *s, int64_t round, const ckpt_manifest *accepted_index, pipe_round_listing *out);
void pipe_round_listing_free(pipe_round_listing *l);
/* The latest attempt of facility in l, or NULL. */
const pipe_attempt *pipe_round_latest_attempt(const pipe_round_listing *l, const char *facility);

/* Writes REJECTED-<12hex> with "commit=<key>\nreason=<reason>\n" beside the COMMIT
 * at commit_key; key_out (may be NULL, PIPE_KEY_MAX) receives its key. */
XFFL_MUST_USE xffl_status pipe_reject(store *s, const char *commit_key, const char *reason, char *key_out);
/* A REJECTED object is aggregate's verdict only when its bytes match its content name
 * and are exactly "commit=<key>\nreason=<one line>\n" for commit_key (NULL: for a
 * COMMIT in its own attempt folder). CORRUPT/INVALID naming it otherwise. A forger who
 * recomputes the name passes: signatures are what stop that (docs/design.md "Trust"). */
XFFL_MUST_USE xffl_status pipe_rejected_check(store *s, const char *key, const char *commit_key);
/* The reason text of a REJECTED object (malloc'd; caller frees). */
XFFL_MUST_USE xffl_status pipe_rejected_reason(store *s, const char *key, char **reason);

#endif
