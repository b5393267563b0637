/* Between storage/store_s3v4.c (the operations) and storage/s3v4_request.c (one signed
 * request through libcurl, and what its outcome means). Not for use outside storage/. */
#ifndef XFFL_S3V4_IMPL_H
#define XFFL_S3V4_IMPL_H

#include <curl/curl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include "storage/s3_settings.h"
#include "storage/sigv4.h"
#include "storage/store_impl.h"

typedef struct {
    s3_settings cfg;
    char *bucket;
    char *prefix; /* "" or "some/prefix/" */
    char *host;   /* the Host header: host[:port], or bucket.host[:port] when virtual-hosted */
    char *origin; /* scheme://host[:port] */
    uint64_t threshold, part_size; /* multipart above threshold; 0: chosen from the size */
    pthread_mutex_t mu;
    CURL **pool;
    size_t npool, cap;
    CURLSH *share;
    int uploads_unsupported_noted;
    int tls_probed;
} v4_store;

/* One request: what to send and where the answer goes (zero it, set out_fd = in_fd = -1
 * where unused, fill the fields, s3v4_perform, s3v4_req_free). */
typedef struct {
    const char *method;      /* GET HEAD PUT POST DELETE */
    const char *op, *key;    /* for messages: "get", the key relative to the store */
    const char *object;      /* full object name ("" for the bucket) */
    const sigv4_pair *q;
    size_t nq;
    /* body: memory, or a file range read with pread */
    const char *body;
    uint64_t body_len;
    int in_fd;
    uint64_t in_off;
    char payload_sha[XFFL_SHA256_HEX];
    EVP_MD_CTX *md5;         /* of what was sent (PUT) */
    uint64_t sent;
    int read_errno;
    /* response body: into out_fd (hashing into sha) or memory */
    int out_fd;
    xffl_sha256_ctx *sha;
    char *buf;
    size_t len, cap, max_mem;
    int io_errno, overflow;
    /* response */
    long http;
    int have_cl;
    uint64_t content_length;
    int64_t last_modified;
    int64_t server_date;
    char etag[128];
    char errbuf[CURL_ERROR_SIZE];
    long slow_s;             /* seconds without progress before a transfer is cut (0: 15) */
    char code[80];           /* S3's error Code of a non-2xx answer, "" when none */
    char *errxml;            /* the body of a non-2xx answer */
    size_t errlen;
    CURLcode cc;
} v4_req;

/* libcurl's global initialization, once per process: INTERNAL naming curl's error. */
XFFL_MUST_USE xffl_status s3v4_global_init(void);
/* Signs and performs r: one attempt, its outcome an xffl status (the one place where a
 * transfer's result is classified: transient, auth, TLS, missing, usage). */
XFFL_MUST_USE xffl_status s3v4_perform(store *s, v4_req *r);
void s3v4_req_free(v4_req *r);
/* The store's prefix + key (malloc'd), NULL when out of memory. */
char *s3v4_full_key(const store *s, const char *key);
/* NOT_FOUND naming key and the store. */
XFFL_MUST_USE xffl_status s3v4_not_found(const store *s, const char *key);

#endif
