#include "common/digest.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct xffl_sha256_ctx {
    EVP_MD_CTX *md;
};

xffl_sha256_ctx *xffl_sha256_create(void)
{
    xffl_sha256_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->md = EVP_MD_CTX_new();
    if (!c->md || !EVP_DigestInit_ex(c->md, EVP_sha256(), NULL)) {
        xffl_sha256_free(c);
        return NULL;
    }
    return c;
}

void xffl_sha256_update(xffl_sha256_ctx *c, const void *data, size_t len) { EVP_DigestUpdate(c->md, data, len); }

void xffl_sha256_final(xffl_sha256_ctx *c, uint8_t out[XFFL_SHA256_LEN])
{
    unsigned int n = 0;
    EVP_DigestFinal_ex(c->md, out, &n);
}

void xffl_sha256_reset(xffl_sha256_ctx *c) { EVP_DigestInit_ex(c->md, EVP_sha256(), NULL); }

void xffl_sha256_free(xffl_sha256_ctx *c)
{
    if (!c) return;
    EVP_MD_CTX_free(c->md);
    free(c);
}

void xffl_sha256(const void *data, size_t len, uint8_t out[XFFL_SHA256_LEN])
{
    unsigned int n = 0;
    EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

void xffl_hex_encode(const uint8_t *bytes, size_t n, char *hex)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        hex[2 * i] = digits[bytes[i] >> 4];
        hex[2 * i + 1] = digits[bytes[i] & 15];
    }
    hex[2 * n] = 0;
}

void xffl_sha256_hex(const void *data, size_t len, char hex[XFFL_SHA256_HEX])
{
    uint8_t d[XFFL_SHA256_LEN];
    xffl_sha256(data, len, d);
    xffl_hex_encode(d, sizeof d, hex);
}

xffl_status xffl_sha256_file(const char *path, char hex[XFFL_SHA256_HEX], uint64_t *size)
{
    FILE *f = fopen(path, "rb");
    XFFL_RETURN_IF(!f, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    xffl_sha256_ctx *c = xffl_sha256_create();
    if (!c) {
        fclose(f);
        return xffl_fail(XFFL_ERR_NOMEM, "sha256 context for %s", path);
    }
    enum { BUF = 1 << 20 };
    unsigned char *buf = malloc(BUF);
    uint64_t total = 0;
    size_t n;
    while (buf && (n = fread(buf, 1, BUF, f)) > 0) {
        xffl_sha256_update(c, buf, n);
        total += n;
    }
    int err = !buf || ferror(f);
    free(buf);
    fclose(f);
    if (err) {
        xffl_sha256_free(c);
        return xffl_fail(XFFL_ERR_IO, "reading %s", path);
    }
    uint8_t d[XFFL_SHA256_LEN];
    xffl_sha256_final(c, d);
    xffl_sha256_free(c);
    xffl_hex_encode(d, sizeof d, hex);
    if (size) *size = total;
    return XFFL_OK;
}

xffl_status xffl_sha256_pieces_hex(const void *data, size_t len, size_t piece, int threads, char hex[XFFL_SHA256_HEX])
{
    XFFL_RETURN_IF(piece == 0, XFFL_ERR_USAGE, "piece size 0");
    const size_t n = len ? (len + piece - 1) / piece : 1, w = XFFL_SHA256_HEX - 1;
    char *each = malloc(n * w + 1);
    XFFL_RETURN_IF(!each, XFFL_ERR_NOMEM, "digest of %zu pieces", n);
#pragma omp parallel for schedule(dynamic) num_threads(xffl_threads(threads))
    for (size_t i = 0; i < n; i++) {
        char h[XFFL_SHA256_HEX];
        const size_t off = i * piece, k = len - off < piece ? len - off : piece;
        xffl_sha256_hex((const char *)data + off, len ? k : 0, h);
        memcpy(each + i * w, h, w);
    }
    xffl_sha256_hex(each, n * w, hex);
    free(each);
    return XFFL_OK;
}
