/* s3:// backend with signature V4 (the default; XFFL_S3_SIGNATURE=v2 is store_s3.c):
 * libcurl for the transport, storage/sigv4.c for the signature, storage/s3xml.c for
 * the answers. Each function is one attempt that classifies its outcome (transient,
 * auth, missing, usage); retries, deadlines and digests stay in store.c, which also
 * drives multipart uploads through the mpu_* operations (store_impl.h).
 *
 * Connections: a store keeps a pool of curl easy handles; a request takes one and gives
 * it back, so its open connection (and TLS session) serves the next request of any
 * thread. A PUT's body is checked over http by the server against its signed SHA-256,
 * over https by its ETag (put_body says why).
 * TLS: certificates are always verified (system CAs, or AWS_CA_BUNDLE); a certificate
 * that does not verify, or a protocol mismatch (https spoken to an http endpoint and the
 * reverse), is a permanent error, never retried, never a fallback to plain http. */
#include "storage/s3v4_impl.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "storage/s3_settings.h"
#include "storage/s3xml.h"
#include "storage/sigv4.h"

#define MIB (1ull << 20)
#define GIB (1ull << 30)
/* S3's limits: a single PUT up to 5 GiB; parts of 5 MiB (but the last) to 5 GiB, 10,000 at most */
#define S3_MAX_PUT (5 * GIB)
#define S3_MIN_PART (5 * MIB)
#define S3_MAX_PART (5 * GIB)
#define S3_MAX_PARTS 10000
/* marks an in-progress multipart upload in a partial listing: "<key>.tmp.upload.<hex id>"
 * (no stored key holds ".tmp.", store.c refuses to write one) */
#define UPLOAD_MARK ".tmp.upload."

/* ---- PUT (an object, or a part of a multipart upload) -------------------------------- */

/* Hex SHA-256 of len bytes of fd from off (the first pass over a file's body). */
static XFFL_MUST_USE xffl_status hash_range(int fd, uint64_t off, uint64_t len, const char *key, char hex[XFFL_SHA256_HEX])
{
    xffl_sha256_ctx *c = xffl_sha256_create();
    char *buf = malloc(1 << 20);
    xffl_status st = XFFL_OK;
    if (!c || !buf) { st = xffl_fail(XFFL_ERR_NOMEM, "put %s", key); goto out; }
    for (uint64_t done = 0; done < len;) {
        size_t want = len - done < (1 << 20) ? (size_t)(len - done) : (1 << 20);
        ssize_t got = pread(fd, buf, want, (off_t)(off + done));
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) {
            st = xffl_fail(XFFL_ERR_IO, "put %s: reading local file: %s", key, got < 0 ? strerror(errno) : "it shrank");
            goto out;
        }
        xffl_sha256_update(c, buf, (size_t)got);
        done += (uint64_t)got;
    }
    uint8_t d[XFFL_SHA256_LEN];
    xffl_sha256_final(c, d);
    xffl_hex_encode(d, sizeof d, hex);
out:
    free(buf);
    xffl_sha256_free(c);
    return st;
}


/* One PUT of mem, or of fd's [off, off+len), to object (with query q: a part); the
 * server's ETag goes to etag_out when given. How the body is checked:
 *  - over http its SHA-256 is signed (x-amz-content-sha256): the file's digest when the
 *    caller has it (kn), else hashed in a first pass. A V4 server refuses a body that
 *    does not match (XAmzContentSHA256Mismatch: transient, sent again);
 *  - over https it goes as UNSIGNED-PAYLOAD, as botocore sends it: TLS protects it on
 *    the way, and the ETag must be the MD5 of the body, which catches a body altered
 *    behind the TLS end. The MD5 is the file's from kn's hashing thread, or taken here as
 *    the body is sent. (Signing a known digest over https too would spare that MD5 but
 *    make the server hash every byte; on a 2-core host with its own server that is
 *    slower, docs/storage.md "PUT speed".) */
static XFFL_MUST_USE xffl_status put_body(store *s, const char *key, const char *object, const char *mem, int fd,
                                          uint64_t off, uint64_t len, const sigv4_pair *q, size_t nq,
                                          const store_known *kn, char *etag_out, size_t etag_cap)
{
    v4_req r = {.method = "PUT", .op = "put", .key = key, .object = object, .q = q, .nq = nq, .body = mem,
                .body_len = len, .in_fd = fd, .in_off = off, .out_fd = -1, .max_mem = 1 << 20};
    const v4_store *b = s->impl;
    const int md5 = b->cfg.https; /* 1: the ETag is checked against an MD5 */
    if (md5) {
        snprintf(r.payload_sha, sizeof r.payload_sha, "UNSIGNED-PAYLOAD");
    } else if (mem) {
        xffl_sha256_hex(mem, len, r.payload_sha);
    } else if (kn && kn->sha256_hex) { /* 64 hex digits: store.c checked */
        for (int i = 0; i < 64; i++) /* V4 wants it in lower case */
            r.payload_sha[i] = (char)tolower((unsigned char)kn->sha256_hex[i]);
        r.payload_sha[64] = 0;
    } else {
        XFFL_FORWARD(hash_range(fd, off, len, key, r.payload_sha));
    }
    const int md5_here = md5 && !(kn && kn->md5s);
    if (md5_here && (!(r.md5 = EVP_MD_CTX_new()) || !EVP_DigestInit_ex(r.md5, EVP_md5(), NULL))) {
        s3v4_req_free(&r);
        return xffl_fail(XFFL_ERR_NOMEM, "put %s: md5", key);
    }
    xffl_status st = s3v4_perform(s, &r);
    char hex[2 * EVP_MAX_MD_SIZE + 1] = "";
    if (md5_here) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        EVP_DigestFinal_ex(r.md5, md, &mdlen);
        xffl_hex_encode(md, mdlen, hex);
    }
    if (st == XFFL_OK && r.sent != len)
        st = xffl_fail(XFFL_ERR_TRANSIENT, "put %s to %s: only %llu of %llu bytes sent", key, s->endpoint,
                       (unsigned long long)r.sent, (unsigned long long)len);
    if (st == XFFL_OK && md5 && !md5_here) st = file_md5s_get(kn->md5s, kn->md5_index, hex);
    if (st == XFFL_OK && md5) st = store_check_put_etag(s, key, r.etag, hex, md5_here ? "what was sent" : "the file");
    if (st == XFFL_OK && etag_out) {
        if (!r.etag[0]) st = xffl_fail(XFFL_ERR_TRANSIENT, "put %s to %s: no ETag in the answer", key, s->endpoint);
        else snprintf(etag_out, etag_cap, "%s", r.etag);
    }
    s3v4_req_free(&r);
    return st;
}

static XFFL_MUST_USE xffl_status v4_put_mem(store *s, const char *key, const void *data, size_t len)
{
    XFFL_RETURN_IF(len > S3_MAX_PUT, XFFL_ERR_UNSUPPORTED, "put %s: %.2f GiB from memory is over S3's 5 GiB single PUT",
                   key, (double)len / GIB);
    char *k = s3v4_full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "put %s", key);
    xffl_status st = put_body(s, key, k, data ? data : "", -1, 0, len, NULL, 0, NULL, NULL, 0);
    free(k);
    return st;
}

static XFFL_MUST_USE xffl_status open_in(const char *key, const char *path, int *fd)
{
    *fd = open(path, O_RDONLY | O_CLOEXEC);
    XFFL_RETURN_IF(*fd < 0, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "put %s: open %s: %s", key, path,
                   strerror(errno));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status v4_put_file(store *s, const char *key, const char *path, uint64_t size,
                                             const store_known *kn)
{
    XFFL_RETURN_IF(size > S3_MAX_PUT, XFFL_ERR_INTERNAL, "put %s: %llu bytes in one PUT (multipart was not chosen)", key,
                   (unsigned long long)size);
    int fd;
    XFFL_FORWARD(open_in(key, path, &fd));
    char *k = s3v4_full_key(s, key);
    xffl_status st =
        k ? put_body(s, key, k, NULL, fd, 0, size, NULL, 0, kn, NULL, 0) : xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    free(k);
    close(fd);
    return st;
}

/* ---- GET, HEAD, DELETE ---------------------------------------------------------------- */

/* r (its body fields set) as a method on the store's object for key: one attempt. */
static XFFL_MUST_USE xffl_status key_request(store *s, const char *key, const char *method, const char *op, v4_req *r)
{
    char *k = s3v4_full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "%s %s", op, key);
    r->method = method;
    r->op = op;
    r->key = key;
    r->object = k;
    xffl_status st = s3v4_perform(s, r);
    free(k);
    r->object = NULL;
    return st;
}

/* A DELETE's NOT_FOUND for a missing key (or upload) is done already; a missing bucket is not. */
static XFFL_MUST_USE xffl_status gone_is_done(xffl_status st, const v4_req *r)
{
    return st == XFFL_ERR_NOT_FOUND && r->http == 404 && strcmp(r->code, "NoSuchBucket") ? XFFL_OK : st;
}

static XFFL_MUST_USE xffl_status get_common(store *s, const char *key, v4_req *r)
{
    XFFL_FORWARD(key_request(s, key, "GET", "get", r));
    XFFL_RETURN_IF(!r->have_cl || r->len != r->content_length, XFFL_ERR_TRANSIENT,
                   "get %s from %s: truncated body (%llu of %llu bytes)", key, s->endpoint, (unsigned long long)r->len,
                   (unsigned long long)r->content_length);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status v4_get_mem(store *s, const char *key, void **data, size_t *len)
{
    v4_req r = {.out_fd = -1, .max_mem = SIZE_MAX / 2};
    xffl_status st = get_common(s, key, &r);
    if (st == XFFL_OK && !r.buf) {
        r.buf = malloc(1); /* an empty object */
        if (!r.buf) st = xffl_fail(XFFL_ERR_NOMEM, "get %s", key);
        else r.buf[0] = 0;
    }
    if (st != XFFL_OK) {
        s3v4_req_free(&r);
        return st;
    }
    *data = r.buf;
    *len = r.len;
    r.buf = NULL;
    s3v4_req_free(&r);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status v4_get_fd(store *s, const char *key, int fd, xffl_sha256_ctx *ctx, uint64_t *written)
{
    v4_req r = {.out_fd = fd, .sha = ctx};
    xffl_status st = get_common(s, key, &r);
    *written = r.len;
    s3v4_req_free(&r);
    return st;
}

static XFFL_MUST_USE xffl_status head_req(store *s, const char *key, v4_req *r)
{
    r->out_fd = -1;
    XFFL_FORWARD(key_request(s, key, "HEAD", "head", r));
    XFFL_RETURN_IF(!r->have_cl, XFFL_ERR_TRANSIENT, "head %s at %s: no Content-Length in the answer", key, s->endpoint);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status v4_head(store *s, const char *key, uint64_t *size, int64_t *mtime)
{
    v4_req r = {0};
    xffl_status st = head_req(s, key, &r);
    s3v4_req_free(&r);
    XFFL_FORWARD(st);
    *size = r.content_length;
    *mtime = r.last_modified > 0 ? r.last_modified : 0;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status abort_upload(store *s, const char *key, const char *object, const char *upload_id)
{
    sigv4_pair q[] = {{"uploadId", upload_id}};
    v4_req r = {.method = "DELETE", .op = "abort upload", .key = key, .object = object, .q = q, .nq = 1, .out_fd = -1};
    xffl_status st = gone_is_done(s3v4_perform(s, &r), &r);
    s3v4_req_free(&r);
    return st;
}

/* "<key>.tmp.upload.<hex of the upload id>" from a partial listing: that upload's abort */
static XFFL_MUST_USE xffl_status del_upload(store *s, const char *key, const char *mark)
{
    const char *hex = mark + strlen(UPLOAD_MARK);
    size_t hl = strlen(hex);
    XFFL_RETURN_IF(hl == 0 || hl % 2 || strspn(hex, "0123456789abcdef") != hl, XFFL_ERR_USAGE,
                   "delete %s: not an upload marker", key);
    char *id = malloc(hl / 2 + 1), *rel = strndup(key, (size_t)(mark - key));
    xffl_status st = XFFL_OK;
    if (!id || !rel) { st = xffl_fail(XFFL_ERR_NOMEM, "delete %s", key); goto out; }
    for (size_t i = 0; i < hl / 2; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        id[i] = (char)v;
    }
    id[hl / 2] = 0;
    char *k = s3v4_full_key(s, rel);
    st = k ? abort_upload(s, rel, k, id) : xffl_fail(XFFL_ERR_NOMEM, "delete %s", key);
    free(k);
out:
    free(id);
    free(rel);
    return st;
}

static XFFL_MUST_USE xffl_status v4_del(store *s, const char *key)
{
    const char *mark = strstr(key, UPLOAD_MARK);
    if (mark) return del_upload(s, key, mark);
    v4_req r = {.out_fd = -1};
    /* an absent key is not an error (S3 answers 204 anyway); an absent bucket is */
    xffl_status st = gone_is_done(key_request(s, key, "DELETE", "delete", &r), &r);
    s3v4_req_free(&r);
    return st;
}

/* ---- LIST ----------------------------------------------------------------------------- */

struct list_ctx {
    store_listing *out;
    size_t cap;
    const char *strip;
    size_t page_keys;
};

static XFFL_MUST_USE xffl_status on_object(void *ud, const char *key, uint64_t size, int64_t mtime)
{
    struct list_ctx *c = ud;
    size_t pl = strlen(c->strip);
    c->page_keys++;
    if (strncmp(key, c->strip, pl)) return XFFL_OK; /* not ours (cannot happen with a prefix query) */
    return store_listing_push(c->out, &c->cap, key + pl, size, mtime);
}

/* "<rel key>.tmp.upload.<hex id>", mtime = when it was initiated */
static XFFL_MUST_USE xffl_status on_upload(void *ud, const char *key, const char *id, int64_t initiated)
{
    struct list_ctx *c = ud;
    size_t pl = strlen(c->strip), il = strlen(id);
    c->page_keys++;
    if (strncmp(key, c->strip, pl)) return XFFL_OK;
    char *k = malloc(strlen(key) - pl + sizeof UPLOAD_MARK + 2 * il);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "listing uploads");
    char *p = k + sprintf(k, "%s%s", key + pl, UPLOAD_MARK);
    xffl_hex_encode((const uint8_t *)id, il, p);
    xffl_status st = store_listing_push(c->out, &c->cap, k, 0, initiated);
    free(k);
    return st;
}

static XFFL_MUST_USE xffl_status list_uploads(store *s, const char *full, store_listing *out)
{
    v4_store *b = s->impl;
    struct list_ctx c = {.out = out, .strip = b->prefix};
    char *key_marker = NULL, *id_marker = NULL;
    xffl_status st = XFFL_OK;
    for (int page = 0;; page++) {
        sigv4_pair q[4] = {{"uploads", ""}, {"prefix", full}};
        size_t nq = 2;
        if (key_marker) q[nq++] = (sigv4_pair){"key-marker", key_marker};
        if (id_marker) q[nq++] = (sigv4_pair){"upload-id-marker", id_marker};
        v4_req r = {.method = "GET", .op = "list uploads", .key = full, .object = "", .q = q, .nq = nq, .out_fd = -1,
                    .max_mem = 64u << 20};
        st = s3v4_perform(s, &r);
        if (st == XFFL_ERR_UNSUPPORTED) {
            if (!__atomic_exchange_n(&b->uploads_unsupported_noted, 1, __ATOMIC_RELAXED))
                xffl_log(XFFL_LOG_DEBUG, "store %s: listing multipart uploads is not supported by %s (%s): stale uploads "
                         "cannot be found there", s->url, s->endpoint, xffl_errmsg());
            st = XFFL_OK;
            s3v4_req_free(&r);
            break;
        }
        int truncated = 0;
        char *nk = NULL, *ni = NULL;
        if (st == XFFL_OK) {
            st = s3xml_list_uploads(r.buf ? r.buf : "", r.len, on_upload, &c, &truncated, &nk, &ni);
            if (st == XFFL_ERR_INVALID)
                st = xffl_fail(XFFL_ERR_TRANSIENT, "list uploads at %s: %s", s->endpoint, xffl_errmsg());
        }
        s3v4_req_free(&r);
        free(key_marker);
        free(id_marker);
        key_marker = nk;
        id_marker = ni;
        if (st != XFFL_OK || !truncated) break;
        if (page > 100000) { st = xffl_fail(XFFL_ERR_TRANSIENT, "list uploads at %s: endless listing", s->endpoint); break; }
    }
    free(key_marker);
    free(id_marker);
    return st;
}

static XFFL_MUST_USE xffl_status v4_list(store *s, const char *prefix, int partial, store_listing *out)
{
    v4_store *b = s->impl;
    char *full = s3v4_full_key(s, prefix);
    XFFL_RETURN_IF(!full, XFFL_ERR_NOMEM, "list %s", prefix);
    if (partial) {
        xffl_status st = list_uploads(s, full, out);
        free(full);
        return st;
    }
    struct list_ctx c = {.out = out, .strip = b->prefix};
    char *token = NULL;
    xffl_status st = XFFL_OK;
    /* ListObjectsV2, no delimiter (nested keys are listed too), pages of 1000 keys */
    for (;;) {
        sigv4_pair q[4] = {{"list-type", "2"}, {"prefix", full}, {"max-keys", "1000"}};
        size_t nq = 3;
        if (token) q[nq++] = (sigv4_pair){"continuation-token", token};
        v4_req r = {.method = "GET", .op = "list", .key = prefix, .object = "", .q = q, .nq = nq, .out_fd = -1,
                    .max_mem = 64u << 20};
        st = s3v4_perform(s, &r);
        int truncated = 0;
        char *next = NULL;
        c.page_keys = 0;
        if (st == XFFL_OK) {
            st = s3xml_list_objects(r.buf ? r.buf : "", r.len, on_object, &c, &truncated, &next);
            /* a cut or garbled answer: try again */
            if (st == XFFL_ERR_INVALID) st = xffl_fail(XFFL_ERR_TRANSIENT, "list %s at %s: %s", prefix, s->endpoint, xffl_errmsg());
        }
        s3v4_req_free(&r);
        free(token);
        token = next;
        if (st != XFFL_OK || !truncated) break;
        if (!c.page_keys) { st = xffl_fail(XFFL_ERR_TRANSIENT, "list %s at %s: truncated page without keys", prefix, s->endpoint); break; }
    }
    free(token);
    free(full);
    return st;
}

/* ---- multipart (driven by store.c: store_put_file_multipart) ------------------------- */

static uint64_t v4_mpu_part_size(store *s, uint64_t size)
{
    const v4_store *b = s->impl;
    if (size <= b->threshold) return 0;
    uint64_t part = b->part_size ? b->part_size : 64 * MIB;
    uint64_t need = (size + S3_MAX_PARTS - 1) / S3_MAX_PARTS; /* at most 10,000 parts */
    if (part < need) part = (need + MIB - 1) / MIB * MIB;
    if (part < S3_MIN_PART) part = S3_MIN_PART;
    if (part > S3_MAX_PART) part = S3_MAX_PART;
    return part;
}

/* Whether the put of a file checks its ETag with the file's MD5 (see put_body): over
 * https, when it goes in a single PUT. */
static int v4_put_wants_md5(store *s, uint64_t size, const char *sha256_hex)
{
    const v4_store *b = s->impl;
    (void)sha256_hex;
    return b->cfg.https && !v4_mpu_part_size(s, size);
}

static XFFL_MUST_USE xffl_status v4_mpu_begin(store *s, const char *key, char **upload_id)
{
    char *k = s3v4_full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "put %s", key);
    sigv4_pair q[] = {{"uploads", ""}};
    v4_req r = {.method = "POST", .op = "start multipart upload", .key = key, .object = k, .q = q, .nq = 1,
                .body = "", .out_fd = -1, .max_mem = 1 << 20};
    xffl_status st = s3v4_perform(s, &r);
    if (st == XFFL_OK) {
        st = s3xml_upload_id(r.buf ? r.buf : "", r.len, upload_id);
        if (st == XFFL_ERR_INVALID)
            st = xffl_fail(XFFL_ERR_TRANSIENT, "put %s at %s: multipart start: %s", key, s->endpoint, xffl_errmsg());
    }
    s3v4_req_free(&r);
    free(k);
    return st;
}

static XFFL_MUST_USE xffl_status v4_mpu_part(store *s, const char *key, const char *upload_id, int part_no,
                                             const char *path, uint64_t off, uint64_t len, char *etag, size_t etag_cap)
{
    int fd;
    XFFL_FORWARD(open_in(key, path, &fd));
    char *k = s3v4_full_key(s, key), num[16];
    snprintf(num, sizeof num, "%d", part_no);
    sigv4_pair q[] = {{"partNumber", num}, {"uploadId", upload_id}};
    xffl_status st = k ? put_body(s, key, k, NULL, fd, off, len, q, 2, NULL, etag, etag_cap)
                       : xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    free(k);
    close(fd);
    return st;
}

static XFFL_MUST_USE xffl_status v4_mpu_complete(store *s, const char *key, const char *upload_id,
                                                 char *const *etags, int nparts, uint64_t total)
{
    char *k = s3v4_full_key(s, key), *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    if (!k || !f) {
        if (f) fclose(f);
        free(body);
        free(k);
        return xffl_fail(XFFL_ERR_NOMEM, "put %s", key);
    }
    fputs("<CompleteMultipartUpload>", f);
    for (int i = 0; i < nparts; i++) {
        fprintf(f, "<Part><PartNumber>%d</PartNumber><ETag>", i + 1);
        for (const char *e = etags[i]; *e; e++) /* the quotes S3 puts around an ETag, escaped */
            if (*e == '"') fputs("&quot;", f);
            else if (*e == '&') fputs("&amp;", f);
            else if (*e == '<') fputs("&lt;", f);
            else fputc(*e, f);
        fputs("</ETag></Part>", f);
    }
    fputs("</CompleteMultipartUpload>", f);
    fclose(f);
    sigv4_pair q[] = {{"uploadId", upload_id}};
    v4_req r = {.method = "POST", .op = "complete multipart upload", .key = key, .object = k, .q = q, .nq = 1,
                .body = body, .body_len = blen, .out_fd = -1, .max_mem = 1 << 20};
    /* the server assembles the object before it answers (AWS sends spaces meanwhile,
     * s3rver nothing): allow 15 s plus 1 s per 20 MiB before calling it stalled */
    r.slow_s = 15 + (long)(total / (20 * MIB));
    xffl_sha256_hex(body, blen, r.payload_sha);
    xffl_status st = s3v4_perform(s, &r);
    int no_upload = st == XFFL_ERR_NOT_FOUND && !strcmp(r.code, "NoSuchUpload");
    if (st == XFFL_OK) {
        /* S3 may answer 200 and then an <Error> (the body is sent while it assembles) */
        char root[64], code[80], msg[300];
        s3xml_root(r.buf ? r.buf : "", r.len, root, sizeof root);
        if (s3xml_error(r.buf ? r.buf : "", r.len, code, sizeof code, msg, sizeof msg))
            st = xffl_fail(!strcmp(code, "InternalError") || !strcmp(code, "SlowDown") ? XFFL_ERR_TRANSIENT : XFFL_ERR_IO,
                           "put %s at %s: completing the multipart upload: %s: %s", key, s->endpoint, code, msg);
        else if (strcmp(root, "CompleteMultipartUploadResult"))
            st = xffl_fail(XFFL_ERR_TRANSIENT, "put %s at %s: completing the multipart upload: no result in the answer",
                           key, s->endpoint);
    }
    s3v4_req_free(&r);
    if (no_upload) {
        /* a Complete whose answer was lost, then retried: the object is there already */
        v4_req h = {0};
        xffl_status hs = head_req(s, key, &h);
        char tail[24];
        snprintf(tail, sizeof tail, "-%d", nparts);
        size_t el = strlen(h.etag);
        const char *e = h.etag;
        if (el && e[el - 1] == '"') el--;
        if (hs == XFFL_OK && h.content_length == total && el > strlen(tail) && !strncmp(e + el - strlen(tail), tail, strlen(tail)))
            st = XFFL_OK;
        else
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "put %s at %s: the multipart upload vanished before it completed", key,
                           s->endpoint);
        s3v4_req_free(&h);
    }
    free(body);
    free(k);
    return st;
}

static XFFL_MUST_USE xffl_status v4_mpu_abort(store *s, const char *key, const char *upload_id)
{
    char *k = s3v4_full_key(s, key);
    XFFL_RETURN_IF(!k, XFFL_ERR_NOMEM, "abort %s", key);
    xffl_status st = abort_upload(s, key, k, upload_id);
    free(k);
    return st;
}

/* ---- open, close ---------------------------------------------------------------------- */

static void v4_close(store *s)
{
    v4_store *b = s->impl;
    if (!b) return;
    for (size_t i = 0; i < b->npool; i++) curl_easy_cleanup(b->pool[i]);
    free(b->pool);
    if (b->share) curl_share_cleanup(b->share);
    pthread_mutex_destroy(&b->mu);
    s3_settings_free(&b->cfg);
    free(b->bucket);
    free(b->prefix);
    free(b->host);
    free(b->origin);
    free(b);
    s->impl = NULL;
}

static const store_ops s3v4_ops = {
    .scheme = "s3",
    .put_mem = v4_put_mem,
    .put_file = v4_put_file,
    .put_wants_md5 = v4_put_wants_md5,
    .get_mem = v4_get_mem,
    .get_fd = v4_get_fd,
    .head = v4_head,
    .del = v4_del,
    .list = v4_list,
    .mpu_part_size = v4_mpu_part_size,
    .mpu_begin = v4_mpu_begin,
    .mpu_part = v4_mpu_part,
    .mpu_complete = v4_mpu_complete,
    .mpu_abort = v4_mpu_abort,
    .close = v4_close,
};

/* K/M/G size from an environment variable; 0 when unset */
static XFFL_MUST_USE xffl_status env_size(const store *s, const char *name, uint64_t lo, uint64_t hi, uint64_t *out)
{
    const char *v = getenv(name);
    *out = 0;
    if (!v || !*v) return XFFL_OK;
    char *end;
    unsigned long long n = strtoull(v, &end, 10);
    uint64_t mul = 1;
    if (*end == 'K' || *end == 'k') mul = 1024, end++;
    else if (*end == 'M' || *end == 'm') mul = MIB, end++;
    else if (*end == 'G' || *end == 'g') mul = GIB, end++;
    XFFL_RETURN_IF(end == v || *end || n == 0 || n > hi / mul || n * mul < lo, XFFL_ERR_USAGE,
                   "store %s: %s must be a size from %lluM to %lluG (K/M/G), not '%s'", s->url, name,
                   (unsigned long long)(lo / MIB), (unsigned long long)(hi / GIB), v);
    *out = n * mul;
    return XFFL_OK;
}

static void share_lock(CURL *h, curl_lock_data d, curl_lock_access a, void *u)
{
    (void)h, (void)d, (void)a;
    pthread_mutex_lock(u);
}
static void share_unlock(CURL *h, curl_lock_data d, void *u)
{
    (void)h, (void)d;
    pthread_mutex_unlock(u);
}
static pthread_mutex_t share_mu = PTHREAD_MUTEX_INITIALIZER;

xffl_status store_s3v4_open(store *s, const char *rest, s3_settings *cfg)
{
    v4_store *b = calloc(1, sizeof *b);
    if (!b) {
        s3_settings_free(cfg);
        return xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url);
    }
    b->cfg = *cfg; /* owned from here */
    memset(cfg, 0, sizeof *cfg);
    pthread_mutex_init(&b->mu, NULL);
    s->impl = b;
    s->ops = &s3v4_ops;
    xffl_status st = XFFL_OK;
    const char *slash = strchr(rest, '/');
    size_t blen = slash ? (size_t)(slash - rest) : strlen(rest);
    if (blen == 0) { st = xffl_fail(XFFL_ERR_USAGE, "store %s: no bucket (expected s3://bucket/prefix)", s->url); goto out; }
    b->bucket = strndup(rest, blen);
    const char *p = slash ? slash : "";
    while (*p == '/') p++;
    size_t plen = strlen(p);
    while (plen && p[plen - 1] == '/') plen--;
    if (plen == 0) b->prefix = strdup("");
    else if (asprintf(&b->prefix, "%.*s/", (int)plen, p) < 0) b->prefix = NULL;
    if (b->cfg.virtual_hosted) {
        if (asprintf(&b->host, "%s.%s", b->bucket ? b->bucket : "", b->cfg.hostport) < 0) b->host = NULL;
    } else {
        b->host = strdup(b->cfg.hostport);
    }
    if (b->host && asprintf(&b->origin, "%s://%s", b->cfg.https ? "https" : "http", b->host) < 0) b->origin = NULL;
    if (asprintf(&s->endpoint, "%s://%s%s%d", b->cfg.https ? "https" : "http", b->cfg.host, ":",
                 b->cfg.port ? b->cfg.port : b->cfg.https ? 443 : 80) < 0)
        s->endpoint = NULL;
    if (!b->bucket || !b->prefix || !b->host || !b->origin || !s->endpoint) {
        st = xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url);
        goto out;
    }
    if (strstr(b->prefix, "//") || strstr(b->prefix, "..")) { st = xffl_fail(XFFL_ERR_USAGE, "store %s: bad prefix", s->url); goto out; }
    /* bucket names: 3-63 of a-z 0-9 . - (S3's rules; underscores and capitals for old buckets) */
    int bad = blen < 3 || blen > 63;
    for (size_t i = 0; i < blen; i++)
        bad |= !((b->bucket[i] >= 'a' && b->bucket[i] <= 'z') || (b->bucket[i] >= '0' && b->bucket[i] <= '9') ||
                 b->bucket[i] == '.' || b->bucket[i] == '-' || b->bucket[i] == '_' ||
                 (b->bucket[i] >= 'A' && b->bucket[i] <= 'Z'));
    if (bad) { st = xffl_fail(XFFL_ERR_USAGE, "store %s: bad bucket name '%s'", s->url, b->bucket); goto out; }
    XFFL_CHECK_GOTO(st, env_size(s, "XFFL_S3_MULTIPART_THRESHOLD", S3_MIN_PART, S3_MAX_PUT, &b->threshold), out);
    XFFL_CHECK_GOTO(st, env_size(s, "XFFL_S3_PART_SIZE", S3_MIN_PART, S3_MAX_PART, &b->part_size), out);
    if (!b->threshold) b->threshold = 512 * MIB;
    if ((st = s3v4_global_init()) != XFFL_OK) goto out;
    /* DNS answers and TLS sessions shared by the store's handles */
    b->share = curl_share_init();
    if (!b->share) { st = xffl_fail(XFFL_ERR_NOMEM, "opening %s", s->url); goto out; }
    curl_share_setopt(b->share, CURLSHOPT_LOCKFUNC, share_lock);
    curl_share_setopt(b->share, CURLSHOPT_UNLOCKFUNC, share_unlock);
    curl_share_setopt(b->share, CURLSHOPT_USERDATA, &share_mu);
    curl_share_setopt(b->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    curl_share_setopt(b->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
    xffl_log(XFFL_LOG_DEBUG, "store %s: s3 signature v4, %s, %s-style, region %s, credentials from %s%s, CA %s", s->url,
             b->origin, b->cfg.virtual_hosted ? "virtual-hosted" : "path", b->cfg.region, b->cfg.creds_from,
             b->cfg.token ? " with a session token" : "", b->cfg.ca_bundle ? b->cfg.ca_bundle : "the system's");
out:
    if (st != XFFL_OK) {
        v4_close(s);
        s->ops = NULL;
    }
    return st;
}
