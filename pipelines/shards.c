#include "pipelines/shards.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/util.h"

typedef struct {
    char *path;
    uint16_t *tok;
    int64_t n;
} shard;

struct pipe_shards {
    shard *sh;
    int count;
    int64_t total;
    char *digests;
};

static xffl_status load_shard(const char *path, int vocab, shard *out, char hex[XFFL_SHA256_HEX])
{
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(path, &data, &len));
    xffl_sha256_hex(data, len, hex);
    int32_t hdr[256];
    xffl_status st = XFFL_OK;
    if (len < sizeof hdr) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: %zu bytes, shorter than its 1024-byte header", path, len);
        goto done;
    }
    memcpy(hdr, data, sizeof hdr);
    if (hdr[0] != PIPE_SHARD_MAGIC || hdr[1] != 1) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: magic %d version %d, expected %d version 1", path, hdr[0], hdr[1],
                       PIPE_SHARD_MAGIC);
        goto done;
    }
    int64_t n = hdr[2];
    if (n < 0 || (size_t)n * 2 + sizeof hdr != len) {
        st = xffl_fail(XFFL_ERR_INVALID, "shard %s: header says %lld tokens, file holds %zu bytes", path, (long long)n,
                       len);
        goto done;
    }
    out->tok = malloc((size_t)(n ? n : 1) * 2);
    if (!out->tok) {
        st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", path);
        goto done;
    }
    memcpy(out->tok, (char *)data + sizeof hdr, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++)
        if (out->tok[i] >= vocab) {
            st = xffl_fail(XFFL_ERR_INVALID, "shard %s: token %u at %lld is outside the vocabulary of %d", path,
                           out->tok[i], (long long)i, vocab);
            goto done;
        }
    out->n = n;
    out->path = strdup(path);
    if (!out->path) st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", path);
done:
    free(data);
    if (st != XFFL_OK) {
        free(out->tok);
        free(out->path);
        memset(out, 0, sizeof *out);
    }
    return st;
}

xffl_status pipe_shards_open(const char *pattern, int vocab, pipe_shards **out)
{
    *out = NULL;
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return xffl_fail(XFFL_ERR_NOT_FOUND, "no token shard matches '%s'", pattern);
    }
    XFFL_RETURN_IF(rc != 0, XFFL_ERR_IO, "cannot expand '%s'", pattern);
    pipe_shards *s = calloc(1, sizeof *s);
    xffl_status st = XFFL_OK;
    if (s) s->sh = calloc(g.gl_pathc, sizeof *s->sh);
    if (s) s->digests = calloc(g.gl_pathc, 300);
    if (!s || !s->sh || !s->digests) {
        st = xffl_fail(XFFL_ERR_NOMEM, "shards of '%s'", pattern);
        goto done;
    }
    /* glob() sorts by the locale; sort bytewise for a cursor that means the same everywhere */
    for (size_t i = 1; i < g.gl_pathc; i++)
        for (size_t j = i; j > 0 && strcmp(g.gl_pathv[j - 1], g.gl_pathv[j]) > 0; j--) {
            char *t = g.gl_pathv[j];
            g.gl_pathv[j] = g.gl_pathv[j - 1];
            g.gl_pathv[j - 1] = t;
        }
    for (size_t i = 0; i < g.gl_pathc; i++) {
        char hex[XFFL_SHA256_HEX];
        XFFL_CHECK_GOTO(st, load_shard(g.gl_pathv[i], vocab, &s->sh[i], hex), done);
        s->count++;
        s->total += s->sh[i].n;
        const char *base = strrchr(g.gl_pathv[i], '/');
        base = base ? base + 1 : g.gl_pathv[i];
        size_t l = strlen(s->digests);
        snprintf(s->digests + l, 300, "%s%.200s:%.12s", i ? "," : "", base, hex);
    }
done:
    globfree(&g);
    if (st != XFFL_OK) {
        pipe_shards_close(s);
        return st;
    }
    *out = s;
    return XFFL_OK;
}

void pipe_shards_close(pipe_shards *s)
{
    if (!s) return;
    for (int i = 0; i < s->count; i++) {
        free(s->sh[i].path);
        free(s->sh[i].tok);
    }
    free(s->sh);
    free(s->digests);
    free(s);
}

int pipe_shards_count(const pipe_shards *s) { return s->count; }
int64_t pipe_shards_tokens(const pipe_shards *s) { return s->total; }
const char *pipe_shards_digests(const pipe_shards *s) { return s->digests; }

xffl_status pipe_shards_next(pipe_shards *s, pipe_cursor *c, int B, int T, int32_t *inputs, int32_t *targets)
{
    XFFL_RETURN_IF(c->seq < 0, XFFL_ERR_INVALID, "data cursor %lld is negative", (long long)c->seq);
    for (int b = 0; b < B; b++) {
        int64_t i = c->seq++;
        const shard *sh = &s->sh[i % s->count];
        int64_t nseq = sh->n > 0 ? (sh->n - 1) / T : 0;
        XFFL_RETURN_IF(nseq < 1, XFFL_ERR_INVALID, "shard %s holds %lld tokens, fewer than sequence length + 1 (%d)",
                       sh->path, (long long)sh->n, T + 1);
        const uint16_t *t = sh->tok + ((i / s->count) % nseq) * T;
        for (int k = 0; k < T; k++) {
            inputs[b * T + k] = t[k];
            targets[b * T + k] = t[k + 1];
        }
    }
    return XFFL_OK;
}

void pipe_cursor_format(const pipe_cursor *c, char *out, size_t cap) { snprintf(out, cap, "%lld", (long long)c->seq); }

xffl_status pipe_cursor_parse(const char *text, pipe_cursor *c)
{
    long long v;
    int used = 0;
    if (sscanf(text, "%lld%n", &v, &used) != 1 || text[used] != 0 || v < 0)
        return xffl_fail(XFFL_ERR_INVALID, "data cursor '%s' is not a sequence count", text);
    c->seq = v;
    return XFFL_OK;
}
