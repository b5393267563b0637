/* The object store interface: everything the facilities share goes through here.
 *
 * A store is opened from a URL: "s3://bucket/prefix", "file:///abs/path" or a plain
 * path. Keys are relative, '/'-separated ("versions/v000001/INDEX-3f9a0c12d4e1").
 * Writes are atomic (a reader sees the whole object or none). Retries with backoff
 * for retryable failures happen inside, bounded by the options; a caller sees
 * XFFL_ERR_UNREACHABLE (exit 74) naming the endpoint once they are spent. */
#ifndef XFFL_STORE_H
#define XFFL_STORE_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "common/digest.h"

typedef struct store store; /* opaque */

typedef struct {
    int jobs;               /* parallel transfers for the *_many calls (default 4) */
    int retries;            /* attempts after the first for retryable failures (default 8) */
    double retry_deadline;  /* seconds: give up retrying after this long (default 120) */
} store_options;

/* Defaults as documented above. */
void store_options_default(store_options *o);

/* Opens a store. For s3:// reads the variables of storage/s3_settings.h (XFFL_S3_*, the
 * AWS tools' AWS_* and ~/.aws profiles); a missing or bad one is a USAGE error naming it,
 * before any request.
 * opt may be NULL (defaults). Caller owns *out; close with store_close (accepts NULL). */
XFFL_MUST_USE xffl_status store_open(const char *url, const store_options *opt, store **out);
void store_close(store *s);
/* The URL it was opened with, for messages. Owned by the store. */
const char *store_url(const store *s);
/* What an "unreachable" message names: "host:port" for s3, the root directory for file. */
const char *store_endpoint(const store *s);
/* "file" or "s3". */
const char *store_scheme(const store *s);

/* Put bytes under key (atomic; overwrites). */
XFFL_MUST_USE xffl_status store_put(store *s, const char *key, const void *data, size_t len);
/* Put a local file's contents under key, streamed (s3 v4: in parts above a threshold;
 * s3 v2: ≤ 4 GiB). */
XFFL_MUST_USE xffl_status store_put_file(store *s, const char *key, const char *path);
/* store_put unless some key starts with unless_prefix: then EXISTS naming that key. Two
 * writers of one file:// store cannot both succeed (a lock beside the keys); on s3 it is
 * a listing, then a put. How a facility's attempt gets one COMMIT when two train jobs race. */
XFFL_MUST_USE xffl_status store_put_unless(store *s, const char *key, const void *data, size_t len,
                                           const char *unless_prefix);
/* Get a whole object into a malloc'd buffer (NUL-terminated; caller frees).
 * NOT_FOUND (not retried) naming the key when absent. */
XFFL_MUST_USE xffl_status store_get(store *s, const char *key, void **data, size_t *len);
/* Get an object into a local file (streamed, written atomically). */
XFFL_MUST_USE xffl_status store_get_file(store *s, const char *key, const char *path);
/* Like store_get / store_get_file but checks the SHA-256 the manifest names
 * (hex): a mismatch is retried once, then CORRUPT naming the key. */
XFFL_MUST_USE xffl_status store_get_verified(store *s, const char *key, const char *sha256_hex, void **data, size_t *len);
XFFL_MUST_USE xffl_status store_get_file_verified(store *s, const char *key, const char *sha256_hex, const char *path);
/* store_get_verified for a small object that its digest names for good (a manifest:
 * LATEST or an INDEX gives its SHA-256): the handle keeps the last 8 verified copies
 * of at most 1 MiB each and serves them again without a request. Any
 * answer the store could give for that key and digest is those bytes or a failure, so
 * the copy is what a new request would return; a job that checks a version's INDEX in
 * three places asks the store once. Not for checks of the store itself (verify's reads
 * of parts, the fault tests): they want every request made. */
XFFL_MUST_USE xffl_status store_get_immutable(store *s, const char *key, const char *sha256_hex, void **data,
                                              size_t *len);
/* Size of an object; NOT_FOUND when absent. mtime may be NULL (seconds since epoch). */
XFFL_MUST_USE xffl_status store_head(store *s, const char *key, uint64_t *size, int64_t *mtime);
/* Delete; absent keys are not an error. */
XFFL_MUST_USE xffl_status store_delete(store *s, const char *key);

typedef struct {
    char *key;      /* relative to the store root */
    uint64_t size;
    int64_t mtime;  /* seconds since epoch */
} store_entry;

typedef struct {
    store_entry *items;
    size_t count;
} store_listing;

/* Every key starting with prefix (no delimiter: nested keys included), sorted
 * bytewise, all pages fetched. Caller frees with store_listing_free (accepts NULL). */
XFFL_MUST_USE xffl_status store_list(store *s, const char *prefix, store_listing *out);
void store_listing_free(store_listing *l);
/* Leftovers of writers killed mid-write (file://: "<key>.tmp.<pid>.<n>" files, which
 * store_list never shows; s3 v4: multipart uploads in progress,
 * "<key>.tmp.upload.<hex id>", empty where the server cannot list them; s3 v2: empty), for gc.
 * Remove one with store_delete(s, entry.key). Keys containing ".tmp." cannot be put. */
XFFL_MUST_USE xffl_status store_list_partial(store *s, const char *prefix, store_listing *out);

/* Parallel transfers (up to opt.jobs at once). Each item is one object. */
typedef struct {
    const char *key;
    const char *path;        /* local file to read (put) or write (get) */
    /* get: the expected digest; put: the file's digest when the caller has it (the V4
     * backend signs it over http, and the server checks the body: no pass to hash it) */
    const char *sha256_hex;  /* or NULL */
} store_transfer;
XFFL_MUST_USE xffl_status store_put_many(store *s, const store_transfer *items, size_t n);
XFFL_MUST_USE xffl_status store_get_many(store *s, const store_transfer *items, size_t n);

#endif
