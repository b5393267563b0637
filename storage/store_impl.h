/* Between storage/store.c and its backends (not for use outside storage/).
 *
 * A backend implements single attempts. Everything around an attempt (retries with
 * backoff, deadlines, digest checks, atomic local files, parallel transfers) lives in
 * store.c and store_many.c, so each policy exists in exactly one place. An attempt
 * that failed in a way worth repeating returns XFFL_ERR_TRANSIENT with a message. */
#ifndef XFFL_STORE_IMPL_H
#define XFFL_STORE_IMPL_H

#include "storage/store.h"

typedef struct store_ops {
    const char *scheme; /* "file", "s3" */
    xffl_status (*put_mem)(store *s, const char *key, const void *data, size_t len);
    /* size: the file's size, measured once by the caller; the backend reopens path per attempt. */
    xffl_status (*put_file)(store *s, const char *key, const char *path, uint64_t size);
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
    void (*close)(store *s);
} store_ops;

struct store {
    const store_ops *ops;
    char *url;       /* as opened, for messages */
    char *endpoint;  /* what "unreachable" names: host:port for s3, the root for file */
    store_options opt;
    void *impl;      /* backend state */
};

/* Backend constructors: fill s->ops, s->impl, s->endpoint. rest is the URL after "scheme://"
 * (or the plain path). */
XFFL_MUST_USE xffl_status store_file_open(store *s, const char *root);
XFFL_MUST_USE xffl_status store_s3_open(store *s, const char *bucket_and_prefix);

/* Appends one entry (key copied) to a listing being built. */
XFFL_MUST_USE xffl_status store_listing_push(store_listing *l, size_t *cap, const char *key, uint64_t size, int64_t mtime);

#endif
