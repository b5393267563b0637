/* Shard writer and reader (format in shards.h). */
#include "text/shards.h"

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
