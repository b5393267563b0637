/* Shard writer and reader (format in shards.h). */
#include "text/shards.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/digest.h"
#include "common/util.h"

xffl_status text_shard_write(const char *path, const uint16_t *tokens, int64_t n)
{
    if (n < 0 || n > INT32_MAX) return xffl_fail(XFFL_ERR_INVALID, "%s: %lld tokens do not fit a shard", path, (long long)n);
    size_t bytes = TEXT_SHARD_HEADER_INTS * 4 + (size_t)n * 2;
    unsigned char *buf = malloc(bytes);
    if (!buf) return xffl_fail(XFFL_ERR_NOMEM, "%s: shard buffer", path);
    int32_t hdr[TEXT_SHARD_HEADER_INTS] = {TEXT_SHARD_MAGIC, TEXT_SHARD_VERSION, (int32_t)n};
    memcpy(buf, hdr, sizeof hdr);
    memcpy(buf + sizeof hdr, tokens, (size_t)n * 2);
    xffl_status st = xffl_write_file_atomic(path, buf, bytes);
    free(buf);
    return st;
}

/* The header first, then exactly the tokens it announces: a size comes from the file
 * only once bounded (a shard holds at most INT32_MAX tokens), and a file that is not a
 * shard is refused before its tokens are read: not a regular file (/dev/zero, a pipe),
 * or a size other than the header says. */
xffl_status text_shard_read(const char *path, int vocab, uint16_t **tokens, int64_t *n, char *sha256_hex)
{
    *tokens = NULL;
    *n = 0;
    FILE *f = fopen(path, "rb");
    XFFL_RETURN_IF(!f, errno == ENOENT ? XFFL_ERR_NOT_FOUND : XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        return xffl_fail(XFFL_ERR_INVALID, "shard %s: not a regular file", path);
    }
    int32_t hdr[TEXT_SHARD_HEADER_INTS];
    xffl_status st = XFFL_OK;
    uint16_t *t = NULL;
    size_t got = fread(hdr, 1, sizeof hdr, f);
    if (got < sizeof hdr) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: %zu bytes, shorter than its %zu-byte header", path, got,
                       sizeof hdr);
        goto done;
    }
    if (hdr[0] != TEXT_SHARD_MAGIC || hdr[1] != TEXT_SHARD_VERSION) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: magic %d version %d, expected %d version %d", path, hdr[0],
                       hdr[1], TEXT_SHARD_MAGIC, TEXT_SHARD_VERSION);
        goto done;
    }
    int64_t count = hdr[2];
    size_t body = count > 0 ? (size_t)count * 2 : 0;
    /* the file's size bounds the allocation, not the header (fuzz_shards: 4 GB from 1 KB) */
    if (count < 0 || fstat(fileno(f), &sb) != 0 || (uint64_t)sb.st_size != sizeof hdr + body) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: header says %lld tokens, file holds %lld bytes of tokens", path,
                       (long long)count, (long long)(sb.st_size - (off_t)sizeof hdr));
        goto done;
    }
    t = malloc(body + 2);
    if (count >= 0 && !t) {
        st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", path);
        goto done;
    }
    got = t ? fread(t, 1, body, f) : 0;
    unsigned char extra;
    if (count < 0 || got != body || fread(&extra, 1, 1, f) != 0) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: header says %lld tokens, file holds %s bytes of tokens", path,
                       (long long)count, got != body ? "fewer" : "more");
        goto done;
    }
    if (ferror(f)) {
        st = xffl_fail(XFFL_ERR_IO, "reading %s", path);
        goto done;
    }
    for (int64_t i = 0; i < count; i++)
        if (t[i] >= vocab) {
            st = xffl_fail(XFFL_ERR_INVALID, "shard %s: token %u at offset %lld is outside the vocabulary of %d", path,
                           t[i], (long long)i, vocab);
            goto done;
        }
    if (sha256_hex) {
        xffl_sha256_ctx *c = xffl_sha256_create();
        if (!c) {
            st = xffl_fail(XFFL_ERR_NOMEM, "shard %s: digest", path);
            goto done;
        }
        uint8_t d[XFFL_SHA256_LEN];
        xffl_sha256_update(c, hdr, sizeof hdr);
        xffl_sha256_update(c, t, body);
        xffl_sha256_final(c, d);
        xffl_sha256_free(c);
        xffl_hex_encode(d, XFFL_SHA256_LEN, sha256_hex);
    }
    *tokens = t;
    *n = count;
    t = NULL;
done:
    free(t);
    fclose(f);
    return st;
}

xffl_status text_shard_tokenizer(const char *shard, char sha256_hex[XFFL_SHA256_HEX], char *model, size_t model_cap,
                                 char *record, size_t record_cap)
{
    sha256_hex[0] = 0;
    if (model_cap) model[0] = 0;
    if (record && record_cap) record[0] = 0;
    /* <dir>/<name>_train_NNNN.bin -> <dir>/<name>_tokenizer.sha256 (the last split marker) */
    const char *base = strrchr(shard, '/');
    base = base ? base + 1 : shard;
    const char *cut = NULL;
    for (const char *p = base; (p = strchr(p, '_')) != NULL; p++)
        if (!strncmp(p, "_train_", 7) || !strncmp(p, "_val_", 5)) cut = p;
    if (!cut) return XFFL_OK;
    char path[4096];
    int n = snprintf(path, sizeof path, "%.*s%s", (int)(cut - shard), shard, TEXT_TOKENIZER_RECORD);
    XFFL_RETURN_IF(n < 0 || (size_t)n >= sizeof path, XFFL_ERR_INVALID, "shard path %s is too long", shard);
    if (record && record_cap) snprintf(record, record_cap, "%s", path);
    void *data = NULL;
    size_t len = 0;
    xffl_status st = xffl_read_file(path, &data, &len);
    if (st == XFFL_ERR_NOT_FOUND) return XFFL_OK;
    XFFL_FORWARD(st);
    const char *t = data;
    size_t hex = strspn(t, "0123456789abcdef");
    int ok = hex == XFFL_SHA256_HEX - 1 && len > hex + 2 && t[hex] == ' ' && t[hex + 1] == ' ';
    if (ok) {
        memcpy(sha256_hex, t, XFFL_SHA256_HEX - 1);
        sha256_hex[XFFL_SHA256_HEX - 1] = 0;
        if (model_cap) snprintf(model, model_cap, "%.*s", (int)strcspn(t + hex + 2, "\n"), t + hex + 2);
    }
    free(data);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: not a sha256sum line \"<sha256>  <tokenizer.model>\"", path);
    return XFFL_OK;
}
