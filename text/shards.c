/* Shard writer and reader (format in shards.h). */
#include "text/shards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

xffl_status text_shard_read(const char *path, int vocab, uint16_t **tokens, int64_t *n, char *sha256_hex)
{
    *tokens = NULL;
    *n = 0;
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    if (sha256_hex) xffl_sha256_hex(data, len, sha256_hex);
    int32_t hdr[TEXT_SHARD_HEADER_INTS];
    xffl_status st = XFFL_OK;
    uint16_t *t = NULL;
    if (len < sizeof hdr) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: %zu bytes, shorter than its %zu-byte header", path, len,
                       sizeof hdr);
        goto done;
    }
    memcpy(hdr, data, sizeof hdr);
    if (hdr[0] != TEXT_SHARD_MAGIC || hdr[1] != TEXT_SHARD_VERSION) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: magic %d version %d, expected %d version %d", path, hdr[0],
                       hdr[1], TEXT_SHARD_MAGIC, TEXT_SHARD_VERSION);
        goto done;
    }
    int64_t count = hdr[2];
    if (count < 0 || (size_t)count * 2 + sizeof hdr != len) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: header says %lld tokens, file holds %zu bytes of tokens", path,
                       (long long)count, len - sizeof hdr);
        goto done;
    }
    t = malloc((size_t)count * 2 + 2);
    if (!t) {
        st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", path);
        goto done;
    }
    memcpy(t, (char *)data + sizeof hdr, (size_t)count * 2);
    for (int64_t i = 0; i < count; i++)
        if (t[i] >= vocab) {
            st = xffl_fail(XFFL_ERR_INVALID, "shard %s: token %u at offset %lld is outside the vocabulary of %d", path,
                           t[i], (long long)i, vocab);
            free(t);
            goto done;
        }
    *tokens = t;
    *n = count;
done:
    free(data);
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
