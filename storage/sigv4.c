/* AWS signature version 4. See sigv4.h. */
#include "storage/sigv4.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/digest.h"

char *sigv4_uri_encode(const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *o = malloc(3 * n + 1), *p = o;
    if (!o) return NULL;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if ((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' ||
            *c == '.' || *c == '_' || *c == '~' || (keep_slash && *c == '/')) {
            *p++ = (char)*c;
        } else {
            *p++ = '%';
            *p++ = hex[*c >> 4];
            *p++ = hex[*c & 15];
        }
    }
    *p = 0;
    return o;
}

/* A growing string; any allocation failure sticks (oom) and is checked once at the end. */
typedef struct {
    char *s;
    size_t len, cap;
    int oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t nc = (b->len + n + 1) * 2;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}
static void sb_str(sbuf *b, const char *s) { sb_add(b, s, strlen(s)); }

typedef struct {
    char *name, *value;
} enc_pair;

static int pair_cmp(const void *a, const void *b)
{
    const enc_pair *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->value, y->value);
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned len = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &len);
}

void sigv4_out_free(sigv4_out *o)
{
    free(o->path);
    free(o->query);
    free(o->authorization);
    o->path = o->query = o->authorization = NULL;
}

xffl_status sigv4_sign(const sigv4_key *k, const char *method, const char *host, const char *path,
                       const sigv4_pair *query, size_t nquery, const sigv4_pair *headers, size_t nheaders,
                       const char *payload_sha256, time_t t, sigv4_out *out)
{
    memset(out, 0, sizeof *out);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out->amz_date, sizeof out->amz_date, "%Y%m%dT%H%M%SZ", &tm);
    char day[9];
    memcpy(day, out->amz_date, 8);
    day[8] = 0;

    size_t nq = nquery, nh = nheaders + 4;
    enc_pair *q = calloc(nq + 1, sizeof *q), *h = calloc(nh, sizeof *h);
    sbuf cq = {0}, cr = {0}, sh = {0}, sts = {0}, auth = {0};
    xffl_status st = XFFL_OK;
    int oom = !q || !h;
    for (size_t i = 0; !oom && i < nq; i++) {
        q[i].name = sigv4_uri_encode(query[i].name, 0);
        q[i].value = sigv4_uri_encode(query[i].value ? query[i].value : "", 0);
        oom = !q[i].name || !q[i].value;
    }
    size_t hn = 0;
    if (!oom) {
        h[hn].name = strdup("host"), h[hn++].value = strdup(host);
        h[hn].name = strdup("x-amz-content-sha256"), h[hn++].value = strdup(payload_sha256);
        h[hn].name = strdup("x-amz-date"), h[hn++].value = strdup(out->amz_date);
        if (k->token && *k->token) h[hn].name = strdup("x-amz-security-token"), h[hn++].value = strdup(k->token);
        for (size_t i = 0; i < nheaders; i++) h[hn].name = strdup(headers[i].name), h[hn++].value = strdup(headers[i].value);
        for (size_t i = 0; i < hn; i++) oom |= !h[i].name || !h[i].value;
    }
    if (oom) { st = xffl_fail(XFFL_ERR_NOMEM, "signing %s %s", method, path); goto out; }
    qsort(q, nq, sizeof *q, pair_cmp);
    qsort(h, hn, sizeof *h, pair_cmp);
    for (size_t i = 0; i < nq; i++) {
        if (i) sb_str(&cq, "&");
        sb_str(&cq, q[i].name);
        sb_str(&cq, "=");
        sb_str(&cq, q[i].value);
    }
    if (!cq.s) sb_str(&cq, "");
    out->path = sigv4_uri_encode(path, 1);
    if (!out->path) { st = xffl_fail(XFFL_ERR_NOMEM, "signing %s %s", method, path); goto out; }

    /* canonical request */
    sb_str(&cr, method);
    sb_str(&cr, "\n");
    sb_str(&cr, out->path);
    sb_str(&cr, "\n");
    sb_str(&cr, cq.s ? cq.s : "");
    sb_str(&cr, "\n");
    for (size_t i = 0; i < hn; i++) {
        /* values trimmed, inner runs of spaces folded to one (none of ours has them) */
        const char *v = h[i].value;
        while (*v == ' ') v++;
        size_t vl = strlen(v);
        while (vl && v[vl - 1] == ' ') vl--;
        sb_str(&cr, h[i].name);
        sb_str(&cr, ":");
        for (size_t j = 0; j < vl; j++)
            if (!(v[j] == ' ' && j && v[j - 1] == ' ')) sb_add(&cr, v + j, 1);
        sb_str(&cr, "\n");
        if (i) sb_str(&sh, ";");
        sb_str(&sh, h[i].name);
    }
    sb_str(&cr, "\n");
    sb_str(&cr, sh.s);
    sb_str(&cr, "\n");
    sb_str(&cr, payload_sha256);
    if (cr.oom || sh.oom || cq.oom) { st = xffl_fail(XFFL_ERR_NOMEM, "signing %s %s", method, path); goto out; }

    char scope[200], crhash[XFFL_SHA256_HEX];
    snprintf(scope, sizeof scope, "%s/%s/%s/aws4_request", day, k->region, k->service);
    xffl_sha256_hex(cr.s, cr.len, crhash);
    sb_str(&sts, "AWS4-HMAC-SHA256\n");
    sb_str(&sts, out->amz_date);
    sb_str(&sts, "\n");
    sb_str(&sts, scope);
    sb_str(&sts, "\n");
    sb_str(&sts, crhash);

    /* the signing key: HMAC chain over date, region, service */
    size_t slen = strlen(k->secret);
    char *k0 = malloc(slen + 5);
    if (!k0 || sts.oom) { free(k0); st = xffl_fail(XFFL_ERR_NOMEM, "signing %s %s", method, path); goto out; }
    memcpy(k0, "AWS4", 4);
    memcpy(k0 + 4, k->secret, slen + 1);
    unsigned char kd[32], kr[32], ks[32], kk[32], sig[32];
    hmac(k0, slen + 4, day, kd);
    OPENSSL_cleanse(k0, slen + 4);
    free(k0);
    hmac(kd, 32, k->region, kr);
    hmac(kr, 32, k->service, ks);
    hmac(ks, 32, "aws4_request", kk);
    hmac(kk, 32, sts.s, sig);
    char sighex[65];
    xffl_hex_encode(sig, 32, sighex);
    OPENSSL_cleanse(kd, sizeof kd);
    OPENSSL_cleanse(kk, sizeof kk);

    sb_str(&auth, "AWS4-HMAC-SHA256 Credential=");
    sb_str(&auth, k->access);
    sb_str(&auth, "/");
    sb_str(&auth, scope);
    sb_str(&auth, ", SignedHeaders=");
    sb_str(&auth, sh.s);
    sb_str(&auth, ", Signature=");
    sb_str(&auth, sighex);
    if (auth.oom) { st = xffl_fail(XFFL_ERR_NOMEM, "signing %s %s", method, path); goto out; }
    out->authorization = auth.s;
    auth.s = NULL;
    out->query = cq.s;
    cq.s = NULL;
out:
    for (size_t i = 0; q && i < nq; i++) free(q[i].name), free(q[i].value);
    for (size_t i = 0; h && i < hn; i++) free(h[i].name), free(h[i].value);
    free(q);
    free(h);
    if (cr.s) OPENSSL_cleanse(cr.s, cr.len); /* holds the session token */
    free(cq.s), free(cr.s), free(sh.s), free(sts.s), free(auth.s);
    if (st != XFFL_OK) sigv4_out_free(out);
    return st;
}
