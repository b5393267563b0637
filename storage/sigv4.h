/* AWS signature version 4 for S3 requests (docs/design.md "Storage"), computed here with
 * OpenSSL's HMAC-SHA256 rather than by libcurl: curl 7.88's CURLOPT_AWS_SIGV4 neither
 * sorts query parameters nor hashes request bodies, so listings and multipart requests
 * would be signed wrongly. tests/unit/test_sigv4.c checks it against botocore.
 *
 * Signed headers: host, x-amz-content-sha256, x-amz-date, x-amz-security-token (when a
 * session token is given) and whatever extra headers the caller passes. */
#ifndef XFFL_SIGV4_H
#define XFFL_SIGV4_H

#include <stddef.h>
#include <time.h>
#include "common/status.h"

typedef struct {
    const char *access;  /* AWS_ACCESS_KEY_ID */
    const char *secret;  /* AWS_SECRET_ACCESS_KEY */
    const char *token;   /* AWS_SESSION_TOKEN or NULL */
    const char *region;  /* "us-east-1" */
    const char *service; /* "s3" */
} sigv4_key;

typedef struct {
    const char *name;  /* unencoded; query: any case, headers: lowercase */
    const char *value; /* unencoded; "" for a bare "?uploads" */
} sigv4_pair;

typedef struct {
    char amz_date[17];    /* 20261201T170000Z */
    char *path;           /* URI-encoded path, '/' kept: goes into the URL as is */
    char *query;          /* canonical query ("a=1&b=x%20y"), sorted: goes into the URL as is */
    char *authorization;  /* value of the Authorization header */
} sigv4_out;

/* SHA-256 of an empty body, the payload hash of GET/HEAD/DELETE. */
#define SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* S3 URI encoding: unreserved characters (A-Z a-z 0-9 - . _ ~) kept, '/' kept when
 * keep_slash, every other byte %XX (upper-case hex). Returns malloc'd, NULL on ENOMEM. */
char *sigv4_uri_encode(const char *s, int keep_slash);

/* Signs one request made at time t. host: the Host header's value (port only when not
 * the scheme's default); path: unencoded ("/bucket/key"); query and headers: any order,
 * unencoded; payload_sha256: lowercase hex of the body's SHA-256. Fills out (free with
 * sigv4_out_free). */
XFFL_MUST_USE xffl_status sigv4_sign(const sigv4_key *k, const char *method, const char *host, const char *path,
                                     const sigv4_pair *query, size_t nquery, const sigv4_pair *headers,
                                     size_t nheaders, const char *payload_sha256, time_t t, sigv4_out *out);
void sigv4_out_free(sigv4_out *o);

#endif
