/* Between storage/store.c and its backends (not for use outside storage/).
 *
 * A backend implements single attempts. Everything around an attempt (retries with
 * backoff, deadlines, digest checks, atomic local files, parallel transfers) lives in
 * store.c and store_many.c, so each policy exists in exactly one place. An attempt
 * that failed in a way worth repeating returns XFFL_ERR_TRANSIENT with a message. */
#ifndef XFFL_STORE_IMPL_H
#define XFFL_STORE_IMPL_H

#include "storage/file_md5s.h"
#include <pthread.h>

#include "storage/store.h"

/* What the caller of a file's put knows of it already, so that a backend need not read
 * the file once more for its checks. Every field may be unset. */
typedef struct {
    const char *sha256_hex; /* the file's SHA-256 (the V4 backend signs it: the server checks the body) */
    file_md5s *md5s;        /* its MD5, being computed there as item md5_index */
    size_t md5_index;
} store_known;

typedef struct store_ops {
    const char *scheme; /* "file", "s3" */
    xffl_status (*put_mem)(store *s, const char *key, const void *data, size_t len);
    /* size: the file's size, measured once by the caller; the backend reopens path per
     * attempt. kn: what the caller knows of the file, or NULL. */
    xffl_status (*put_file)(store *s, const char *key, const char *path, uint64_t size, const store_known *kn);
    /* 1 when the put of a file of size bytes whose SHA-256 is sha256_hex (NULL: unknown)
     * compares the stored ETag with the file's MD5 (a single PUT; the parts of a
     * multipart upload hash what they send): store_many then hashes a batch on one
     * thread (file_md5s.c) and hands the MD5 over in kn. NULL: never. */
    int (*put_wants_md5)(store *s, uint64_t size, const char *sha256_hex);
    /* *data malloc'd and NUL-terminated; the backend checks the byte count it was promised. */
    xffl_status (*get_mem)(store *s, const char *key, void **data, size_t *len);
    /* Writes the whole object to fd from offset 0 (fd is empty), hashing into ctx. */
    xffl_status (*get_fd)(store *s, const char *key, int fd, xffl_sha256_ctx *ctx, uint64_t *written);
    xffl_status (*head)(store *s, const char *key, uint64_t *size, int64_t *mtime);
    xffl_status (*del)(store *s, const char *key);
    /* Unsorted is fine: store.c sorts. partial=1 lists leftovers of killed writers instead. */
    xffl_status (*list)(store *s, const char *prefix, int partial, store_listing *out);
    /* put_mem unless a key starts with unless_prefix (EXISTS naming it), atomically with
     * respect to other writers of this store; NULL: store.c lists, then puts. */
    xffl_status (*put_unless)(store *s, const char *key, const void *data, size_t len, const char *unless_prefix);
    /* Multipart upload (NULL: put_file always). Why the parts are operations here rather
     * than a loop inside the backend: each part, the start and the completion is one
     * attempt like any other, so store.c's one retry loop (with_retries: backoff,
     * deadline, the transient/permanent split) applies to each part on its own, a part
     * that failed is sent again alone, and the parts go in parallel on store.c's threads
     * (opt.jobs) like store_many's objects. store_multipart.c drives them: begin, the
     * parts, complete; on any failure that is final, abort (an upload killed midway is
     * never visible as an object; `xffl gc` finds its leftovers in the partial listing).
     * mpu_part_size: 0 for a single PUT of an object this size, else the part size. */
    uint64_t (*mpu_part_size)(store *s, uint64_t size);
    xffl_status (*mpu_begin)(store *s, const char *key, char **upload_id);
    /* part_no from 1; the bytes [off, off+len) of path; the part's ETag into etag */
    xffl_status (*mpu_part)(store *s, const char *key, const char *upload_id, int part_no, const char *path,
                            uint64_t off, uint64_t len, char *etag, size_t etag_cap);
    /* total: the object's size, to recognize a retried Complete whose first answer was lost */
    xffl_status (*mpu_complete)(store *s, const char *key, const char *upload_id, char *const *etags, int nparts,
                                uint64_t total);
    xffl_status (*mpu_abort)(store *s, const char *key, const char *upload_id);
    void (*close)(store *s);
} store_ops;

/* A verified copy store_get_immutable keeps (store.c says which and why). */
#define STORE_MEMO_SLOTS 8
#define STORE_MEMO_MAX (1u << 20) /* bytes of one object, at most */
typedef struct {
    char *key;
    char sha256[65];
    void *data;
    size_t len;
    uint64_t used; /* the handle's clock at the last hit: the least recent goes first */
} store_memo;

struct store {
    const store_ops *ops;
    char *url;       /* as opened, for messages */
    char *endpoint;  /* what "unreachable" names: host:port for s3, the root for file */
    store_options opt;
    void *impl;      /* backend state */
    pthread_mutex_t memo_mu;
    store_memo memo[STORE_MEMO_SLOTS];
    uint64_t memo_clock;
};

/* Backend constructors: fill s->ops, s->impl, s->endpoint. rest is the URL after "scheme://"
 * (or the plain path). The s3 ones take over cfg (freed on failure too); store.c picks
 * one by cfg->v2 (XFFL_S3_SIGNATURE). */
typedef struct s3_settings s3_settings;
XFFL_MUST_USE xffl_status store_file_open(store *s, const char *root);
XFFL_MUST_USE xffl_status store_s3v2_open(store *s, const char *bucket_and_prefix, s3_settings *cfg);
XFFL_MUST_USE xffl_status store_s3v4_open(store *s, const char *bucket_and_prefix, s3_settings *cfg);

/* store.c's one retry loop around a single attempt fn(s, arg) (what and key name it in
 * messages): transient failures are retried with backoff within opt.retries and
 * opt.retry_deadline, then UNREACHABLE. */
typedef xffl_status (*store_attempt_fn)(store *s, void *arg);
XFFL_MUST_USE xffl_status store_with_retries(store *s, const char *what, const char *key, store_attempt_fn fn, void *arg);
/* The same loop with tighter bounds (cleanup that must not hold the caller long). */
XFFL_MUST_USE xffl_status store_with_retries_bounded(store *s, const char *what, const char *key, store_attempt_fn fn,
                                                     void *arg, int retries, double deadline);
/* The check a single PUT's ETag gets in every backend: when it is an MD5 (32 hex
 * digits, quotes aside; a multipart or encrypted object's is not), it must be md5_hex,
 * the MD5 of what_hashed ("what was sent", "the file"). TRANSIENT otherwise, so that the
 * put is sent again. */
XFFL_MUST_USE xffl_status store_check_put_etag(const store *s, const char *key, const char *etag, const char *md5_hex,
                                               const char *what_hashed);
/* store_put_file with what the caller knows of the file (kn may be NULL). */
XFFL_MUST_USE xffl_status store_put_file_known(store *s, const char *key, const char *path, const store_known *kn);
/* store_put_file of an object the backend uploads in parts of part_size (store_multipart.c). */
XFFL_MUST_USE xffl_status store_put_file_multipart(store *s, const char *key, const char *path, uint64_t size,
                                                   uint64_t part_size);

/* Appends one entry (key copied) to a listing being built. */
XFFL_MUST_USE xffl_status store_listing_push(store_listing *l, size_t *cap, const char *key, uint64_t size, int64_t mtime);

#endif
