/* One signed S3 request through libcurl, and what its outcome means (s3v4_impl.h). */
#include "storage/s3v4_impl.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "storage/s3xml.h"
#include "storage/tls_probe.h"

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

xffl_status s3v4_global_init(void)
{
    pthread_once(&curl_once, curl_init);
    XFFL_RETURN_IF(curl_init_rc != CURLE_OK, XFFL_ERR_INTERNAL, "libcurl initialization failed: %s",
                   curl_easy_strerror(curl_init_rc));
    return XFFL_OK;
}

static int64_t http_date(const char *v)
{
    struct tm tm = {0};
    const char *e = strptime(v, "%a, %d %b %Y %H:%M:%S", &tm);
    if (!e) return -1;
    return (int64_t)timegm(&tm);
}

static size_t on_header(char *b, size_t size, size_t n, void *v)
{
    v4_req *r = v;
    size_t len = size * n;
    char line[512];
    size_t l = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, b, l);
    line[l] = 0;
    while (l && (line[l - 1] == '\r' || line[l - 1] == '\n')) line[--l] = 0;
    if (!strncmp(line, "HTTP/", 5)) { /* a new response (after a 100 Continue): forget the last */
        const char *sp = strchr(line, ' ');
        r->http = sp ? atol(sp + 1) : 0;
        r->have_cl = 0;
        r->etag[0] = 0;
        return len;
    }
    char *c = strchr(line, ':');
    if (!c) return len;
    *c = 0;
    char *val = c + 1;
    while (*val == ' ' || *val == '\t') val++;
    if (!strcasecmp(line, "content-length")) {
        r->have_cl = strspn(val, "0123456789") > 0;
        r->content_length = strtoull(val, NULL, 10);
    } else if (!strcasecmp(line, "etag")) {
        snprintf(r->etag, sizeof r->etag, "%s", val);
    } else if (!strcasecmp(line, "last-modified")) {
        r->last_modified = http_date(val);
    } else if (!strcasecmp(line, "date")) {
        r->server_date = http_date(val);
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *v)
{
    v4_req *r = v;
    size_t len = size * n;
    if (r->http < 200 || r->http > 299) {
        /* an error answer: keep (up to 64 KiB of) its XML */
        if (r->errlen + len > 65536) return len;
        char *nb = realloc(r->errxml, r->errlen + len + 1);
        if (!nb) return 0;
        r->errxml = nb;
        memcpy(r->errxml + r->errlen, data, len);
        r->errlen += len;
        r->errxml[r->errlen] = 0;
        return len;
    }
    if (r->have_cl && (uint64_t)r->len + len > r->content_length) {
        r->overflow = 1;
        return 0;
    }
    if (r->out_fd >= 0) {
        xffl_sha256_update(r->sha, data, len);
        const char *p = data;
        size_t left = len;
        while (left) {
            ssize_t w = write(r->out_fd, p, left);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) {
                r->io_errno = w < 0 ? errno : ENOSPC;
                return 0;
            }
            p += w;
            left -= (size_t)w;
        }
        r->len += len;
        return len;
    }
    if (r->len + len > r->max_mem) {
        r->overflow = 1;
        return 0;
    }
    if (r->len + len + 1 > r->cap) {
        size_t nc = r->cap ? r->cap : 4096;
        if (r->have_cl && r->content_length + 1 > nc && r->content_length < r->max_mem) nc = (size_t)r->content_length + 1;
        while (nc < r->len + len + 1) nc *= 2;
        char *nb = realloc(r->buf, nc);
        if (!nb) {
            r->io_errno = ENOMEM;
            return 0;
        }
        r->buf = nb;
        r->cap = nc;
    }
    memcpy(r->buf + r->len, data, len);
    r->len += len;
    r->buf[r->len] = 0;
    return len;
}

static size_t on_read(char *buf, size_t size, size_t n, void *v)
{
    v4_req *r = v;
    uint64_t left = r->body_len - r->sent;
    size_t want = size * n < left ? size * n : (size_t)left;
    if (want == 0) return 0;
    if (r->body) {
        memcpy(buf, r->body + r->sent, want);
    } else {
        ssize_t got;
        do got = pread(r->in_fd, buf, want, (off_t)(r->in_off + r->sent));
        while (got < 0 && errno == EINTR);
        if (got <= 0) {
            r->read_errno = got < 0 ? errno : EIO; /* the file shrank under us */
            return CURL_READFUNC_ABORT;
        }
        want = (size_t)got;
    }
    if (r->md5) EVP_DigestUpdate(r->md5, buf, want);
    r->sent += want;
    return want;
}

/* curl's rewind (a redirect or an auth retry would need it; we allow neither, but a
 * reused connection that closed before the request may make curl resend) */
static int on_seek(void *v, curl_off_t off, int origin)
{
    v4_req *r = v;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->body_len) return CURL_SEEKFUNC_CANTSEEK;
    r->sent = (uint64_t)off;
    if (r->md5) {
        if (off != 0) return CURL_SEEKFUNC_CANTSEEK;
        EVP_DigestInit_ex(r->md5, EVP_md5(), NULL);
    }
    return CURL_SEEKFUNC_OK;
}

static CURL *take_handle(v4_store *b)
{
    CURL *h = NULL;
    pthread_mutex_lock(&b->mu);
    if (b->npool) h = b->pool[--b->npool];
    pthread_mutex_unlock(&b->mu);
    if (!h) h = curl_easy_init();
    else curl_easy_reset(h); /* options back to defaults; its open connection stays */
    return h;
}

static void give_handle(v4_store *b, CURL *h)
{
    if (!h) return;
    pthread_mutex_lock(&b->mu);
    if (b->npool == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 8;
        CURL **np = realloc(b->pool, nc * sizeof *np);
        if (np) b->pool = np, b->cap = nc;
    }
    if (b->npool < b->cap) b->pool[b->npool++] = h, h = NULL;
    pthread_mutex_unlock(&b->mu);
    if (h) curl_easy_cleanup(h);
}

/* Does host:port answer a TLS handshake? Only asked after a plain-http request got
 * nothing sensible back, to tell "this is an https endpoint" from a dead server; once per
 * store: a plain server that resets now and then is asked no more. */
static int speaks_tls(const store *s)
{
    v4_store *b = s->impl;
    if (__atomic_exchange_n(&b->tls_probed, 1, __ATOMIC_RELAXED)) return 0;
    return tls_probe(b->cfg.host, b->cfg.port ? b->cfg.port : 80) == TLS_PROBE_TLS;
}

xffl_status s3v4_not_found(const store *s, const char *key)
{
    return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such key in %s", key, s->url);
}

/* The one place where a transfer's outcome becomes an xffl status. */
static XFFL_MUST_USE xffl_status classify(const store *s, v4_req *r)
{
    const v4_store *b = s->impl;
    const char *op = r->op, *key = r->key && *r->key ? r->key : "(all keys)";
    if (r->read_errno) return xffl_fail(XFFL_ERR_IO, "%s %s: reading local file: %s", op, key, strerror(r->read_errno));
    if (r->io_errno == ENOMEM) return xffl_fail(XFFL_ERR_NOMEM, "%s %s", op, key);
    if (r->io_errno) return xffl_fail(XFFL_ERR_IO, "%s %s: writing local file: %s", op, key, strerror(r->io_errno));
    if (r->overflow)
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s from %s: more bytes than the %llu announced", op, key, s->endpoint,
                         (unsigned long long)r->content_length);
    switch (r->cc) {
    case CURLE_OK:
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
#if LIBCURL_VERSION_NUM < 0x073e00
    case CURLE_SSL_CACERT:
#endif
        return xffl_fail(XFFL_ERR_TLS,
                         "the TLS certificate of %s did not verify (%s); trusted: %s (a site CA goes in AWS_CA_BUNDLE)",
                         s->endpoint, r->errbuf, b->cfg.ca_bundle ? b->cfg.ca_bundle : "the system's CAs");
    case CURLE_SSL_CACERT_BADFILE:
        return xffl_fail(XFFL_ERR_USAGE, "CA bundle %s (AWS_CA_BUNDLE) could not be used: %s",
                         b->cfg.ca_bundle ? b->cfg.ca_bundle : "(system)", r->errbuf);
    case CURLE_SSL_CONNECT_ERROR:
        if (strstr(r->errbuf, "wrong version number") || strstr(r->errbuf, "packet length too long") ||
            strstr(r->errbuf, "record layer failure"))
            return xffl_fail(XFFL_ERR_USAGE, "%s does not speak https (the TLS handshake got a plain answer: %s); "
                             "for a plain http endpoint set XFFL_S3_HTTPS=0 or AWS_ENDPOINT_URL=http://...",
                             s->endpoint, r->errbuf);
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s at %s: TLS handshake failed: %s", op, key, s->endpoint, r->errbuf);
    case CURLE_GOT_NOTHING:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_RECV_ERROR:           /* a TLS terminator resets a plain request */
    case CURLE_UNSUPPORTED_PROTOCOL: /* "Received HTTP/0.9 when not allowed": TLS bytes */
        if (!b->cfg.https && speaks_tls(s))
            return xffl_fail(XFFL_ERR_USAGE, "%s speaks https, not http (%s); set XFFL_S3_HTTPS=1 or "
                             "AWS_ENDPOINT_URL=https://...", s->endpoint, r->errbuf);
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s at %s: %s", op, key, s->endpoint, r->errbuf);
    case CURLE_OUT_OF_MEMORY:
        return xffl_fail(XFFL_ERR_NOMEM, "%s %s", op, key);
    case CURLE_URL_MALFORMAT:
        return xffl_fail(XFFL_ERR_USAGE, "%s %s: bad URL for %s (%s)", op, key, s->endpoint, r->errbuf);
    default:
        /* refused, reset, timed out (the low-speed limit), cut short, name lookups */
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s at %s: %s", op, key, s->endpoint,
                         r->errbuf[0] ? r->errbuf : curl_easy_strerror(r->cc));
    }
    if (r->http >= 200 && r->http <= 299) return XFFL_OK;
    char code[80] = "", msg[300] = "";
    if (r->errxml) {
        if (!s3xml_error(r->errxml, r->errlen, code, sizeof code, msg, sizeof msg))
            snprintf(msg, sizeof msg, "%.200s", r->errxml);
        for (char *c = msg; *c; c++)
            if (*c == '\n' || *c == '\r') *c = ' ';
    }
    const char *codep = code[0] ? code : "";
    snprintf(r->code, sizeof r->code, "%s", code);
    int64_t now = (int64_t)time(NULL);
    int64_t skew = r->server_date > 0 ? r->server_date - now : 0;
    if (!strcmp(codep, "RequestTimeTooSkewed") && skew < 60 && skew > -60)
        return xffl_fail(XFFL_ERR_AUTH, "credentials rejected by %s (%s %s: RequestTimeTooSkewed%s%s): the request's time "
                         "is too far from the server's clock, though its Date is within a minute of this machine's",
                         s->endpoint, op, key, msg[0] ? ": " : "", msg);
    if (!strcmp(codep, "RequestTimeTooSkewed") || (r->http == 403 && (skew > 600 || skew < -600)))
        return xffl_fail(XFFL_ERR_AUTH, "credentials rejected by %s (%s %s: %s): this machine's clock is off by %lld "
                         "seconds (%s the server's Date); fix the clock (NTP)", s->endpoint, op, key,
                         code[0] ? code : "HTTP 403", (long long)(skew < 0 ? -skew : skew),
                         skew > 0 ? "behind" : "ahead of");
    if (r->http == 403 || !strcmp(codep, "InvalidToken") || !strcmp(codep, "ExpiredToken") ||
        !strcmp(codep, "AuthorizationHeaderMalformed") || !strcmp(codep, "InvalidAccessKeyId") ||
        !strcmp(codep, "SignatureDoesNotMatch") || !strcmp(codep, "TokenRefreshRequired"))
        return xffl_fail(XFFL_ERR_AUTH, "credentials rejected by %s (%s %s: %s%s%s); check %s%s, region %s", s->endpoint,
                         op, key, code[0] ? code : "HTTP 403", msg[0] ? ": " : "", msg, b->cfg.creds_from,
                         b->cfg.token ? " and AWS_SESSION_TOKEN" : "", b->cfg.region);
    if (!strcmp(codep, "NoSuchBucket"))
        return xffl_fail(XFFL_ERR_NOT_FOUND, "bucket '%s' does not exist at %s (%s %s)", b->bucket, s->endpoint, op, key);
    if (!strcmp(codep, "NoSuchUpload"))
        return xffl_fail(XFFL_ERR_NOT_FOUND, "%s %s at %s: the multipart upload is gone (NoSuchUpload)", op, key,
                         s->endpoint);
    if (r->http == 404) return s3v4_not_found(s, r->key);
    if (r->http >= 500 || r->http == 408 || r->http == 429 || !strcmp(codep, "RequestTimeout") ||
        !strcmp(codep, "IncompleteBody") || !strcmp(codep, "BadDigest") || !strcmp(codep, "OperationAborted") ||
        /* the body's SHA-256 is not the signed one: damaged on its way, send it again */
        !strcmp(codep, "XAmzContentSHA256Mismatch") ||
        !strcmp(codep, "SlowDown") || !strcmp(codep, "InternalError")) {
        if (r->http == 501 || !strcmp(codep, "NotImplemented"))
            return xffl_fail(XFFL_ERR_UNSUPPORTED, "%s %s: %s does not implement it (%s)", op, key, s->endpoint,
                             msg[0] ? msg : "NotImplemented");
        return xffl_fail(XFFL_ERR_TRANSIENT, "%s %s at %s: HTTP %ld %s%s%s", op, key, s->endpoint, r->http, codep,
                         msg[0] ? ": " : "", msg);
    }
    if (!strcmp(codep, "InvalidBucketName"))
        return xffl_fail(XFFL_ERR_USAGE, "bad bucket name '%s' (%s)", b->bucket, msg);
    if (!strcmp(codep, "KeyTooLongError"))
        return xffl_fail(XFFL_ERR_USAGE, "%s %s: key too long (%s)", op, key, msg);
    if (r->http == 301 || r->http == 307 || !strcmp(codep, "PermanentRedirect"))
        return xffl_fail(XFFL_ERR_USAGE, "%s %s: %s sends this bucket elsewhere (HTTP %ld %s: %s); check AWS_REGION and "
                         "the endpoint", op, key, s->endpoint, r->http, codep, msg);
    return xffl_fail(XFFL_ERR_IO, "%s %s at %s failed: HTTP %ld %s%s%s", op, key, s->endpoint, r->http, codep,
                     msg[0] ? ": " : "", msg);
}

xffl_status s3v4_perform(store *s, v4_req *r)
{
    v4_store *b = s->impl;
    char *path = NULL;
    int pn = b->cfg.virtual_hosted ? asprintf(&path, "/%s", r->object)
                                   : asprintf(&path, "/%s%s%s", b->bucket, r->object[0] ? "/" : "", r->object);
    if (pn < 0) return xffl_fail(XFFL_ERR_NOMEM, "%s %s", r->op, r->key);
    sigv4_key k = {b->cfg.access, b->cfg.secret, b->cfg.token, b->cfg.region, "s3"};
    if (!r->payload_sha[0]) snprintf(r->payload_sha, sizeof r->payload_sha, "%s", SIGV4_EMPTY_SHA256);
    sigv4_out sig;
    xffl_status st = sigv4_sign(&k, r->method, b->host, path, r->q, r->nq, NULL, 0, r->payload_sha, time(NULL), &sig);
    free(path);
    XFFL_FORWARD(st);
    char *url = NULL, *h_auth = NULL, *h_date = NULL, *h_sha = NULL, *h_tok = NULL, *h_host = NULL;
    struct curl_slist *hdr = NULL;
    CURL *h = NULL;
    st = XFFL_OK;
    if (asprintf(&url, "%s%s%s%s", b->origin, sig.path, sig.query[0] ? "?" : "", sig.query) < 0) url = NULL;
    if (asprintf(&h_auth, "Authorization: %s", sig.authorization) < 0) h_auth = NULL;
    if (asprintf(&h_date, "x-amz-date: %s", sig.amz_date) < 0) h_date = NULL;
    if (asprintf(&h_sha, "x-amz-content-sha256: %s", r->payload_sha) < 0) h_sha = NULL;
    if (asprintf(&h_host, "Host: %s", b->host) < 0) h_host = NULL;
    if (b->cfg.token && asprintf(&h_tok, "x-amz-security-token: %s", b->cfg.token) < 0) h_tok = NULL;
    if (!url || !h_auth || !h_date || !h_sha || !h_host || (b->cfg.token && !h_tok)) {
        st = xffl_fail(XFFL_ERR_NOMEM, "%s %s", r->op, r->key);
        goto out;
    }
    struct curl_slist *t;
    const char *lines[] = {h_host, h_auth, h_date, h_sha, h_tok, "Expect:", "Accept:"};
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++) {
        if (!lines[i]) continue;
        t = curl_slist_append(hdr, lines[i]);
        if (!t) { st = xffl_fail(XFFL_ERR_NOMEM, "%s %s", r->op, r->key); goto out; }
        hdr = t;
    }
    if (r->body_len && !strcmp(r->method, "PUT")) {
        t = curl_slist_append(hdr, "Content-Type: application/octet-stream");
        if (!t) { st = xffl_fail(XFFL_ERR_NOMEM, "%s %s", r->op, r->key); goto out; }
        hdr = t;
    }
    h = take_handle(b);
    if (!h) { st = xffl_fail(XFFL_ERR_NOMEM, "%s %s: curl handle", r->op, r->key); goto out; }
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, r->errbuf);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    /* a stalled transfer (under 1 KiB/s for 15 s) is cut and retried, as libs3 does */
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, r->slow_s ? r->slow_s : 15L);
    curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(h, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(h, CURLOPT_SHARE, b->share);
    curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
    curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    if (b->cfg.ca_bundle) { /* instead of the system's CAs, as the AWS tools take it: not beside them */
        curl_easy_setopt(h, CURLOPT_CAINFO, b->cfg.ca_bundle);
        curl_easy_setopt(h, CURLOPT_CAPATH, (char *)NULL);
    }
    if (!strcmp(r->method, "HEAD")) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (!strcmp(r->method, "PUT") || !strcmp(r->method, "POST")) {
        curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
        curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(h, CURLOPT_READDATA, r);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, r);
        if (!strcmp(r->method, "POST")) curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, "POST");
    } else if (strcmp(r->method, "GET")) {
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
    r->http = 0;
    double t0 = xffl_now();
    r->cc = curl_easy_perform(h);
    long code = 0, conns = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(h, CURLINFO_NUM_CONNECTS, &conns);
    if (code) r->http = code;
    /* method, path, query and sizes only: never a header (the signature, the token) */
    if (xffl_log_enabled(XFFL_LOG_DEBUG))
        xffl_log(XFFL_LOG_DEBUG, "s3 %s %s%s%s: %ld, %llu bytes up, %llu down, %.3f s, %s", r->method, sig.path,
                 sig.query[0] ? "?" : "", sig.query, r->http, (unsigned long long)r->sent,
                 (unsigned long long)(r->len ? r->len : r->errlen), xffl_now() - t0,
                 conns ? "new connection" : "connection reused");
    if (r->cc != CURLE_OK && !r->errbuf[0]) snprintf(r->errbuf, sizeof r->errbuf, "%s", curl_easy_strerror(r->cc));
    st = classify(s, r);
out:
    give_handle(b, h);
    curl_slist_free_all(hdr);
    free(url);
    if (h_auth) OPENSSL_cleanse(h_auth, strlen(h_auth));
    if (h_tok) OPENSSL_cleanse(h_tok, strlen(h_tok));
    free(h_auth), free(h_date), free(h_sha), free(h_tok), free(h_host);
    sigv4_out_free(&sig);
    return st;
}

void s3v4_req_free(v4_req *r)
{
    free(r->buf);
    free(r->errxml);
    if (r->md5) EVP_MD_CTX_free(r->md5);
    r->buf = r->errxml = NULL;
    r->md5 = NULL;
}

char *s3v4_full_key(const store *s, const char *key)
{
    const v4_store *b = s->impl;
    char *k = NULL;
    if (asprintf(&k, "%s%s", b->prefix, key) < 0) return NULL;
    return k;
}
