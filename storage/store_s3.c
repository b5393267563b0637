/* s3:// backend on libs3 2.0 (XFFL_S3_SIGNATURE=v2; v4 is store_s3v4.c): signature V2,
 * one PUT per object (no multipart, so objects are limited to 4 GiB here); certificates
 * are verified only thanks to storage/curl_verify.c (libs3 turns verification off). Each function is one attempt: it
 * classifies the outcome (transient, auth, missing) and store.c decides about retries.
 *
 * libs3 reports a body cut short by the server (curl's CURLE_PARTIAL_FILE) as success,
 * so every GET counts its bytes against Content-Length; every PUT compares the ETag the
 * server computed (MD5 of what it stored) with the MD5 of what was sent. */
#include "storage/store_impl.h"
#include "storage/s3_settings.h"
#include "storage/tls_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <libs3.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define S3_MAX_OBJECT (4ull << 30)

typedef struct {
    char *host;   /* host:port */
    char *bucket;
    char *prefix; /* "" or "some/prefix/" */
    char *access, *secret;
    int https, tls_probed;
    S3BucketContext ctx;
} s3_store;

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static S3Status init_status = S3StatusOK;

static void s3_init(void) { init_status = S3_initialize("xffl", S3_INIT_ALL, NULL); }

/* One request's state, shared by all libs3 callbacks of that request. */
typedef struct {
    S3Status status;
    char detail[300];
    int have_props;
    uint64_t content_length;
    int64_t last_modified;
    char etag[80];
    /* get */
    char *buf;
    size_t got;
    int fd;
    xffl_sha256_ctx *sha;
    int overflow, io_errno;
    /* put */
    const char *src;
    int in_fd;
    char *rbuf;
    size_t rbuf_len, rbuf_pos;
    uint64_t total, sent;
    EVP_MD_CTX *md5;
    int read_errno;
    /* list */
    store_listing *listing;
    size_t list_cap;
    const char *strip;
    int truncated;
    char *last_key;
    int page_keys;
    xffl_status list_st;
} req;

static S3Status on_props(const S3ResponseProperties *p, void *v)
{
    req *r = v;
    r->have_props = 1;
    r->content_length = p->contentLength;
    r->last_modified = p->lastModified;
    snprintf(r->etag, sizeof r->etag, "%s", p->eTag ? p->eTag : "");
    return S3StatusOK;
}

static void on_complete(S3Status status, const S3ErrorDetails *e, void *v)
{
    req *r = v;
    r->status = status;
    r->detail[0] = 0;
    if (e && e->message) snprintf(r->detail, sizeof r->detail, ": %s", e->message);
}

static XFFL_MUST_USE xffl_status not_found_key(const store *s, const char *key)
{
    return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such key in %s", key, s->url);
}

/* libs3 reports a connection reset by a TLS port (plain http spoken to it) and a failed
 * handshake with a plain port (https spoken to it) alike, as InternalError: ask the port
 * once per store what it speaks. USAGE naming the setting, or OK (nothing learned). */
static XFFL_MUST_USE xffl_status protocol_mismatch(const store *s)
{
    s3_store *b = s->impl;
    if (__atomic_exchange_n(&b->tls_probed, 1, __ATOMIC_RELAXED)) return XFFL_OK;
    char host[300];
    snprintf(host, sizeof host, "%s", b->host);
    int port = b->https ? 443 : 80;
    char *colon = strrchr(host, ':'), *bracket = strrchr(host, ']');
    if (colon && (!bracket || colon > bracket)) {
        port = atoi(colon + 1);
        *colon = 0;
    }
    tls_probe_result pr = tls_probe(host, port);
    if (!b->https && pr == TLS_PROBE_TLS)
        return xffl_fail(XFFL_ERR_USAGE, "%s speaks https, not http; set XFFL_S3_HTTPS=1 or AWS_ENDPOINT_URL=https://...",
                         s->endpoint);
    if (b->https && pr == TLS_PROBE_PLAIN)
        return xffl_fail(XFFL_ERR_USAGE, "%s does not speak https (a plain answer to the TLS handshake); for a plain "
                         "http endpoint set XFFL_S3_HTTPS=0 or AWS_ENDPOINT_URL=http://...", s->endpoint);
    return XFFL_OK;
}

/* The one place where libs3 outcomes become xffl statuses. */
static XFFL_MUST_USE xffl_status classify(const store *s, const req *r, const char *op, const char *key)
{
    const s3_store *b = s->impl;
    S3Status st = r->status;
    const char *name = S3_get_status_name(st);
    if (st == S3StatusInternalError || st == S3StatusConnectionFailed) XFFL_FORWARD(protocol_mismatch(s));
    switch (st) {
    case S3StatusOK:
        return XFFL_OK;
    case S3StatusErrorAccessDenied:
    case S3StatusErrorInvalidAccessKeyId:
    case S3StatusErrorSignatureDoesNotMatch:
    case S3StatusHttpErrorForbidden:
    case S3StatusErrorRequestTimeTooSkewed:
    case S3StatusErrorAccountProblem:
    case S3StatusErrorExpiredToken:
    case S3StatusErrorInvalidToken:
        return xffl_fail(XFFL_ERR_AUTH, "credentials rejected by %s (%s %s: %s%s); check AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY",
                         s->endpoint, op, key, name, r->detail);
    case S3StatusServerFailedVerification:
        /* libs3 turns verification off; storage/curl_verify.c turns it back on */
        return xffl_fail(XFFL_ERR_TLS, "the TLS certificate of %s did not verify (%s %s: %s); trusted: %s (a site CA "
                         "goes in AWS_CA_BUNDLE)", s->endpoint, op, key, name,
                         getenv("AWS_CA_BUNDLE") && *getenv("AWS_CA_BUNDLE") ? getenv("AWS_CA_BUNDLE") : "the system's CAs");
    case S3StatusErrorNoSuchBucket:
        return xffl_fail(XFFL_ERR_NOT_FOUND, "bucket '%s' does not exist at %s (%s %s)", b->bucket, s->endpoint, op, key);
    case S3StatusErrorNoSuchKey:
    case S3StatusHttpErrorNotFound:
        return not_found_key(s, key);
    /* connection refused/reset, timeouts (curl's low-speed limit), 5xx, throttling,
     * and a response cut off mid-XML: all worth another try */
    case S3StatusInternalError:
    case S3StatusNameLookupError:
    case S3StatusFailedToConnect:
    case S3StatusConnectionFailed:
    case S3StatusXmlParseFailure:
    case S3StatusErrorInternalError:
    case S3StatusErrorSlowDown:
    case S3StatusErrorRequestTimeout:
    case S3StatusErrorOperationAborted:
    case S3StatusErrorIncompleteBody:
    case S3StatusErrorUnknown:
    case S3StatusHttpErrorUnknown:
    case S3StatusErrorBadDigest:
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s at %s: %s%s", op, key, s->endpoint, name, r->detail);
    case S3StatusOutOfMemory:
        return xffl_fail(XFFL_ERR_NOMEM, "%s %s: %s", op, key, name);
    case S3StatusInvalidBucketNameTooLong:
    case S3StatusInvalidBucketNameFirstCharacter:
    case S3StatusInvalidBucketNameCharacter:
    case S3StatusInvalidBucketNameCharacterSequence:
    case S3StatusInvalidBucketNameTooShort:
    case S3StatusInvalidBucketNameDotQuadNotation:
    case S3StatusErrorInvalidBucketName:
        return xffl_fail(XFFL_ERR_USAGE, "bad bucket name '%s' (%s)", b->bucket, name);
    case S3StatusKeyTooLong:
    case S3StatusUriTooLong:
    case S3StatusErrorKeyTooLong:
        return xffl_fail(XFFL_ERR_USAGE, "%s %s: key too long (%s)", op, key, name);
    default:
        return xffl_fail(XFFL_ERR_IO, "%s %s at %s failed: %s%s", op, key, s->endpoint, name, r->detail);
    }
}

/* Full object name: the store's prefix + key. */
static char *full_key(const store *s, const char *key)
{
    const s3_store *b = s->impl;
    char *k = NULL;
    if (asprintf(&k, "%s%s", b->prefix, key) < 0) return NULL;
    return k;
}

/* ---- GET ------------------------------------------------------------------------- */

static S3Status on_get_mem(int n, const char *data, void *v)
{
    req *r = v;
    if (!r->buf) {
        /* first chunk: size the buffer from Content-Length, +1 for the NUL */
        if (!r->have_props || r->content_length > SIZE_MAX - 1) return S3StatusAbortedByCallback;
        r->buf = malloc((size_t)r->content_length + 1);
        if (!r->buf) return S3StatusOutOfMemory;
    }
    if ((uint64_t)r->got + (uint64_t)n > r->content_length) {
        r->overflow = 1;
        return S3StatusAbortedByCallback;
    }
    memcpy(r->buf + r->got, data, (size_t)n);
    r->got += (size_t)n;
    return S3StatusOK;
}

static S3Status on_get_fd(int n, const char *data, void *v)
{
    req *r = v;
    if (r->have_props && (uint64_t)r->got + (uint64_t)n > r->content_length) {
        r->overflow = 1;
        return S3StatusAbortedByCallback;
    }
    xffl_sha256_update(r->sha, data, (size_t)n);
    const char *p = data;
    size_t left = (size_t)n;
    while (left) {
        ssize_t w = write(r->fd, p, left);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) {
            r->io_errno = w < 0 ? errno : ENOSPC;
            return S3StatusAbortedByCallback;
        }
        p += w;
        left -= (size_t)w;
    }
    r->got += (size_t)n;
    return S3StatusOK;
}

static XFFL_MUST_USE xffl_status get_common(store *s, const char *key, req *r, S3GetObjectDataCallback *cb)
{
    s3_store *b = s->impl;
    char *k = full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "get %s", key);
    S3GetObjectHandler h = {{on_props, on_complete}, cb};
    r->status = S3StatusInternalError;
    S3_get_object(&b->ctx, k, NULL, 0, 0, NULL, &h, r);
    free(k);
    if (r->io_errno) return xffl_fail(XFFL_ERR_IO, "get %s: writing local file: %s", key, strerror(r->io_errno));
    if (r->overflow)
        return xffl_fail(XFFL_ERR_TRANSIENT, "get %s from %s: more bytes than the %llu announced", key, s->endpoint,
                         (unsigned long long)r->content_length);
    XFFL_FORWARD(classify(s, r, "get", key));
    if (!r->have_props || r->got != r->content_length)
        return xffl_fail(XFFL_ERR_TRANSIENT, "get %s from %s: truncated body (%llu of %llu bytes)", key, s->endpoint,
                         (unsigned long long)r->got, (unsigned long long)r->content_length);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status s3_get_mem(store *s, const char *key, void **data, size_t *len)
{
    req r = {0};
    xffl_status st = get_common(s, key, &r, on_get_mem);
    if (st == XFFL_OK && !r.buf) {
        r.buf = malloc(1); /* empty object: no data callback at all */
        if (!r.buf) st = xffl_fail(XFFL_ERR_NOMEM, "get %s", key);
    }
    if (st != XFFL_OK) {
        free(r.buf);
        return st;
    }
    r.buf[r.got] = 0;
    *data = r.buf;
    *len = r.got;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status s3_get_fd(store *s, const char *key, int fd, xffl_sha256_ctx *ctx, uint64_t *written)
{
    req r = {0};
    r.fd = fd;
    r.sha = ctx;
    xffl_status st = get_common(s, key, &r, on_get_fd);
    *written = r.got;
    return st;
}

/* ---- HEAD (also used to check what a PUT stored) -------------------------------- */

static XFFL_MUST_USE xffl_status head_req(store *s, const char *key, req *r)
{
    s3_store *b = s->impl;
    char *k = full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "head %s", key);
    r->status = S3StatusInternalError;
    S3ResponseHandler h = {on_props, on_complete};
    S3_head_object(&b->ctx, k, NULL, &h, r);
    free(k);
    XFFL_FORWARD(classify(s, r, "head", key));
    XFFL_RETURN_IF(!r->have_props, XFFL_ERR_TRANSIENT, "head %s at %s: no response headers", key, s->endpoint);
    return XFFL_OK;
}

/* ---- PUT ------------------------------------------------------------------------- */

/* A read callback asking for this much or more is filled by read() directly (curl asks
 * for its upload buffer, 64 KiB); a smaller ask goes through rbuf (1 MiB reads). */
#define READ_DIRECT (16u << 10)

/* read() of up to cap bytes of the file being put; 0 and r->read_errno set when it
 * fails or the file ends early (it shrank under us) */
static size_t read_body(req *r, char *dst, size_t cap)
{
    ssize_t got;
    do got = read(r->in_fd, dst, cap);
    while (got < 0 && errno == EINTR);
    if (got > 0) return (size_t)got;
    r->read_errno = got < 0 ? errno : EIO;
    return 0;
}

static int on_put(int n, char *buf, void *v)
{
    req *r = v;
    uint64_t left = r->total - r->sent;
    size_t want = (size_t)n < left ? (size_t)n : (size_t)left;
    if (want == 0) return 0;
    if (r->src) {
        memcpy(buf, r->src + r->sent, want);
    } else if (r->rbuf_pos == r->rbuf_len && want >= READ_DIRECT) {
        /* nothing buffered and curl asks for a lot: read straight into its buffer */
        if (!(want = read_body(r, buf, want))) return -1;
    } else {
        if (r->rbuf_pos == r->rbuf_len) {
            if (!(r->rbuf_len = read_body(r, r->rbuf, 1 << 20))) return -1;
            r->rbuf_pos = 0;
        }
        if (want > r->rbuf_len - r->rbuf_pos) want = r->rbuf_len - r->rbuf_pos;
        memcpy(buf, r->rbuf + r->rbuf_pos, want);
        r->rbuf_pos += want;
    }
    if (r->md5) EVP_DigestUpdate(r->md5, buf, want);
    r->sent += want;
    return (int)want;
}

/* One PUT of r's body (memory or a file); the stored object's ETag must be the MD5 of
 * the body: computed here as it is sent, or of the file by kn's hashing thread. */
static XFFL_MUST_USE xffl_status put_common(store *s, const char *key, req *r, const store_known *kn)
{
    s3_store *b = s->impl;
    XFFL_RETURN_IF(r->total > S3_MAX_OBJECT, XFFL_ERR_UNSUPPORTED,
                   "put %s: %.2f GiB is over the 4 GiB s3 object limit (libs3 2.0 has no multipart upload); "
                   "use a smaller --part-size", key, (double)r->total / (1 << 30));
    char *k = full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "put %s", key);
    const int md5_here = !(kn && kn->md5s);
    if (md5_here) {
        r->md5 = EVP_MD_CTX_new();
        if (!r->md5 || !EVP_DigestInit_ex(r->md5, EVP_md5(), NULL)) {
            EVP_MD_CTX_free(r->md5);
            free(k);
            return xffl_fail(XFFL_ERR_NOMEM, "put %s: md5", key);
        }
    }
    S3PutProperties props = {0};
    props.contentType = "application/octet-stream";
    props.expires = -1;
    props.cannedAcl = S3CannedAclPrivate;
    S3PutObjectHandler h = {{on_props, on_complete}, on_put};
    r->status = S3StatusInternalError;
    S3_put_object(&b->ctx, k, r->total, &props, NULL, &h, r);
    free(k);
    char hex[STORE_MD5_HEX] = "";
    if (md5_here) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(r->md5, md, &mdlen);
        EVP_MD_CTX_free(r->md5);
        r->md5 = NULL;
        xffl_hex_encode(md, mdlen < 16 ? mdlen : 16, hex);
    }
    if (r->read_errno) return xffl_fail(XFFL_ERR_IO, "put %s: reading local file: %s", key, strerror(r->read_errno));
    XFFL_FORWARD(classify(s, r, "put", key));
    XFFL_RETURN_IF(r->sent != r->total, XFFL_ERR_TRANSIENT, "put %s to %s: only %llu of %llu bytes sent", key,
                   s->endpoint, (unsigned long long)r->sent, (unsigned long long)r->total);
    /* libs3 2.0 makes the properties callback of a PUT before the response arrives, so
     * the PUT's own ETag is never seen: HEAD the object instead. A single-part ETag is
     * the MD5 of the stored bytes, which catches a body altered on its way up. */
    req h2 = {0};
    xffl_status hs = head_req(s, key, &h2);
    /* stores with eventual consistency may not show it yet: put it again */
    XFFL_RETURN_IF(hs == XFFL_ERR_NOT_FOUND, XFFL_ERR_TRANSIENT, "put %s to %s: object not there right after the PUT",
                   key, s->endpoint);
    XFFL_FORWARD(hs);
    XFFL_RETURN_IF(h2.content_length != r->total, XFFL_ERR_TRANSIENT,
                   "put %s to %s: stored object has %llu bytes, sent %llu", key, s->endpoint,
                   (unsigned long long)h2.content_length, (unsigned long long)r->total);
    if (!md5_here) XFFL_FORWARD(file_md5s_get(kn->md5s, kn->md5_index, hex));
    return store_check_put_etag(s, key, h2.etag, hex, md5_here ? "what was sent" : "the file");
}

static XFFL_MUST_USE xffl_status s3_put_mem(store *s, const char *key, const void *data, size_t len)
{
    req r = {0};
    r.src = data ? data : "";
    r.total = len;
    return put_common(s, key, &r, NULL);
}

static XFFL_MUST_USE xffl_status s3_put_file(store *s, const char *key, const char *path, uint64_t size,
                                             const store_known *kn)
{
    req r = {0};
    r.total = size;
    r.in_fd = open(path, O_RDONLY | O_CLOEXEC);
    XFFL_RETURN_IF(r.in_fd < 0, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "put %s: open %s: %s", key, path,
                   strerror(errno));
    r.rbuf = malloc(1 << 20);
    xffl_status st = r.rbuf ? put_common(s, key, &r, kn) : xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    free(r.rbuf);
    close(r.in_fd);
    return st;
}

/* Every PUT's ETag is compared with an MD5 (V2 has no other check of the body). */
static int s3_put_wants_md5(store *s, uint64_t size, const char *sha256_hex)
{
    (void)s, (void)size, (void)sha256_hex;
    return 1;
}

/* ---- HEAD, DELETE ---------------------------------------------------------------- */

static XFFL_MUST_USE xffl_status s3_head(store *s, const char *key, uint64_t *size, int64_t *mtime)
{
    req r = {0};
    XFFL_FORWARD(head_req(s, key, &r));
    *size = r.content_length;
    *mtime = r.last_modified;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status s3_del(store *s, const char *key)
{
    s3_store *b = s->impl;
    char *k = full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "delete %s", key);
    req r = {0};
    r.status = S3StatusInternalError;
    S3ResponseHandler h = {on_props, on_complete};
    S3_delete_object(&b->ctx, k, NULL, &h, &r);
    free(k);
    if (r.status == S3StatusErrorNoSuchKey || r.status == S3StatusHttpErrorNotFound) return XFFL_OK;
    return classify(s, &r, "delete", key);
}

/* ---- LIST ------------------------------------------------------------------------ */

static S3Status on_list(int truncated, const char *next, int n, const S3ListBucketContent *c, int np,
                        const char **cp, void *v)
{
    (void)np;
    (void)cp;
    req *r = v;
    r->truncated = truncated;
    size_t plen = strlen(r->strip);
    for (int i = 0; i < n; i++) {
        free(r->last_key);
        r->last_key = strdup(c[i].key);
        if (!r->last_key) return S3StatusOutOfMemory;
        r->page_keys++;
        if (strncmp(c[i].key, r->strip, plen)) continue; /* not ours (cannot happen with a prefix query) */
        xffl_status st = store_listing_push(r->listing, &r->list_cap, c[i].key + plen, c[i].size, c[i].lastModified);
        if (st != XFFL_OK) {
            r->list_st = st;
            return S3StatusAbortedByCallback;
        }
    }
    (void)next; /* NextMarker may point past keys a cut body lost: go on from the last key received */
    return S3StatusOK;
}

static XFFL_MUST_USE xffl_status s3_list(store *s, const char *prefix, int partial, store_listing *out)
{
    /* S3 PUTs are all-or-nothing: nothing partial to report. */
    if (partial) return XFFL_OK;
    s3_store *b = s->impl;
    char *full = full_key(s, prefix);
    XFFL_RETURN_IF(!full, XFFL_ERR_NOMEM, "list %s", prefix);
    req r = {0};
    r.listing = out;
    r.strip = b->prefix;
    S3ListBucketHandler h = {{on_props, on_complete}, on_list};
    xffl_status st = XFFL_OK;
    char *marker = NULL;
    /* No delimiter: s3rver drops nested keys when one is given; pages of 1000 keys.
     * libs3 accepts a listing whose body was cut short, and IsTruncated comes before
     * the keys in the XML, so a cut final page silently loses its tail. A page that
     * says "more" is safe (we go on from the last key we got); the end is trusted only
     * after two consecutive empty answers after the last key. */
    int empty_answers = 0;
    for (;;) {
        r.status = S3StatusInternalError;
        r.truncated = 0;
        r.page_keys = 0;
        S3_list_bucket(&b->ctx, full, marker, NULL, 1000, NULL, &h, &r);
        if (r.list_st != XFFL_OK) { st = r.list_st; break; }
        st = classify(s, &r, "list", prefix[0] ? prefix : "(all keys)");
        if (st != XFFL_OK) break;
        if (r.page_keys == 0) {
            if (r.truncated) {
                st = xffl_fail(XFFL_ERR_TRANSIENT, "list %s at %s: truncated page without keys", prefix, s->endpoint);
                break;
            }
            if (++empty_answers == 2) break;
            continue;
        }
        empty_answers = 0;
        free(marker);
        marker = r.last_key;
        r.last_key = NULL;
    }
    free(marker);
    free(r.last_key);
    free(full);
    return st;
}

static void s3_close(store *s)
{
    s3_store *b = s->impl;
    if (!b) return;
    free(b->host);
    free(b->bucket);
    free(b->prefix);
    free(b->access);
    free(b->secret);
    free(b);
    s->impl = NULL;
}

static const store_ops s3_ops = {
    .scheme = "s3",
    .put_mem = s3_put_mem,
    .put_file = s3_put_file,
    .put_wants_md5 = s3_put_wants_md5,
    .get_mem = s3_get_mem,
    .get_fd = s3_get_fd,
    .head = s3_head,
    .del = s3_del,
    .list = s3_list,
    .close = s3_close,
};

xffl_status store_s3v2_open(store *s, const char *rest, s3_settings *cfg)
{
    const char *host = cfg->hostport;
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (blen == 0) {
        s3_settings_free(cfg);
        return xffl_fail(XFFL_ERR_USAGE, "store %s: no bucket (expected s3://bucket/prefix)", s->url);
    }
    s3_store *b = calloc(1, sizeof *b);
    if (!b) {
        s3_settings_free(cfg);
        return xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url);
    }
    s->impl = b; /* from here s3_close frees it on failure */
    s->ops = &s3_ops;
    int use_https = cfg->https;
    b->https = use_https;
    b->bucket = strndup(rest, blen);
    b->host = strdup(host);
    b->access = strdup(cfg->access);
    b->secret = strdup(cfg->secret);
    /* prefix without leading/trailing slashes, then one trailing '/' if non-empty */
    const char *p = slash ? slash : "";
    while (*p == '/') p++;
    size_t plen = strlen(p);
    while (plen && p[plen - 1] == '/') plen--;
    if (plen == 0) b->prefix = strdup("");
    else if (asprintf(&b->prefix, "%.*s/", (int)plen, p) < 0) b->prefix = NULL;
    if (asprintf(&s->endpoint, "%s://%s", use_https ? "https" : "http", host) < 0) s->endpoint = NULL;
    xffl_status st = XFFL_OK;
    if (!b->bucket || !b->host || !b->access || !b->secret || !b->prefix || !s->endpoint)
        st = xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url);
    else if (strstr(b->prefix, "//") || strstr(b->prefix, ".."))
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: bad prefix", s->url);
    else if (S3_validate_bucket_name(b->bucket, cfg->virtual_hosted ? S3UriStyleVirtualHost : S3UriStylePath) != S3StatusOK)
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: bad bucket name '%s'", s->url, b->bucket);
    else if (strlen(host) > S3_MAX_HOSTNAME_SIZE)
        st = xffl_fail(XFFL_ERR_USAGE, "store %s: the endpoint's host name is too long", s->url);
    if (st == XFFL_OK) {
        pthread_once(&init_once, s3_init);
        if (init_status != S3StatusOK)
            st = xffl_fail(XFFL_ERR_INTERNAL, "libs3 initialization failed: %s", S3_get_status_name(init_status));
    }
    int virtual_hosted = cfg->virtual_hosted;
    s3_settings_free(cfg);
    if (st != XFFL_OK) {
        s3_close(s);
        s->ops = NULL;
        return st;
    }
    b->ctx = (S3BucketContext){b->host, b->bucket, use_https ? S3ProtocolHTTPS : S3ProtocolHTTP,
                               virtual_hosted ? S3UriStyleVirtualHost : S3UriStylePath, b->access, b->secret};
    return XFFL_OK;
}
