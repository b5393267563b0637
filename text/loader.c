/* The shard loader (contract and sampling order in loader.h). */
#include "text/loader.h"

#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/digest.h"
#include "common/util.h"
#include "text/shards.h"

typedef struct {
    char *path;
    uint16_t *tok;
    int64_t n;
} shard;

struct text_loader {
    shard *sh;
    int count;
    int64_t total;
    char *digests;
    int strided;   /* text_loader_stride: 1 = the seeded order below */
    uint64_t seed;
};

/* The shard was packed with the tokenizer want names ("" byte-level). */
static XFFL_MUST_USE xffl_status check_tokenizer(const char *shard, const char *want)
{
    char got[XFFL_SHA256_HEX], model[256], record[4096], mine[4500], theirs[100];
    XFFL_FORWARD(text_shard_tokenizer(shard, got, model, sizeof model, record, sizeof record));
    if (!strcmp(got, want)) return XFFL_OK;
    if (got[0])
        snprintf(mine, sizeof mine, "tokenizer %.200s (sha256 %.12s..., %s)", model, got, record);
    else
        snprintf(mine, sizeof mine, "the byte-level tokenizer (no %s beside it)", record[0] ? record : "tokenizer record");
    if (want[0])
        snprintf(theirs, sizeof theirs, "tokenizer.model sha256 %.12s...", want);
    else
        snprintf(theirs, sizeof theirs, "the byte-level tokenizer");
    return xffl_fail(XFFL_ERR_INVALID, "shard %s was packed with %s, but the federation uses %s: "
                     "pack the text with the federation's tokenizer", shard, mine, theirs);
}

xffl_status text_loader_open(const char *pattern, int vocab, const char *tokenizer_sha256, text_loader **out)
{
    if (!tokenizer_sha256) tokenizer_sha256 = "";
    *out = NULL;
    glob_t g;
    int rc = glob(pattern, 0, NULL, &g);
    if (rc == GLOB_NOMATCH || (rc == 0 && g.gl_pathc == 0)) {
        if (rc == 0) globfree(&g);
        return xffl_fail(XFFL_ERR_NOT_FOUND, "no token shard matches '%s'", pattern);
    }
    XFFL_RETURN_IF(rc != 0, XFFL_ERR_IO, "cannot expand '%s'", pattern);
    text_loader *l = calloc(1, sizeof *l);
    xffl_status st = XFFL_OK;
    if (l) l->sh = calloc(g.gl_pathc, sizeof *l->sh);
    if (l) l->digests = calloc(g.gl_pathc, 300);
    if (!l || !l->sh || !l->digests) {
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
        shard *sh = &l->sh[i];
        XFFL_CHECK_GOTO(st, check_tokenizer(g.gl_pathv[i], tokenizer_sha256), done);
        XFFL_CHECK_GOTO(st, text_shard_read(g.gl_pathv[i], vocab, &sh->tok, &sh->n, hex), done);
        sh->path = strdup(g.gl_pathv[i]);
        if (!sh->path) {
            free(sh->tok);
            sh->tok = NULL;
            st = xffl_fail(XFFL_ERR_NOMEM, "shard %s", g.gl_pathv[i]);
            goto done;
        }
        l->count++;
        l->total += sh->n;
        const char *base = strrchr(g.gl_pathv[i], '/');
        base = base ? base + 1 : g.gl_pathv[i];
        size_t len = strlen(l->digests);
        snprintf(l->digests + len, 300, "%s%.200s:%.12s", i ? "," : "", base, hex);
    }
done:
    globfree(&g);
    if (st != XFFL_OK) {
        text_loader_close(l);
        return st;
    }
    *out = l;
    return XFFL_OK;
}

void text_loader_close(text_loader *l)
{
    if (!l) return;
    for (int i = 0; i < l->count; i++) {
        free(l->sh[i].path);
        free(l->sh[i].tok);
    }
    free(l->sh);
    free(l->digests);
    free(l);
}

int text_loader_shards(const text_loader *l) { return l->count; }

void text_loader_stride(text_loader *l, uint64_t seed)
{
    l->strided = 1;
    l->seed = seed;
}


static uint64_t gcd64(uint64_t a, uint64_t b)
{
    while (b) {
        uint64_t t = a % b;
        a = b;
        b = t;
    }
    return a;
}

uint64_t text_loader_stride_index(uint64_t seed, int shard, int64_t pass, int64_t n, int64_t k)
{
    if (n < 2) return 0;
    const uint64_t un = (uint64_t)n;
    uint64_t h = xffl_splitmix64(seed ^ xffl_splitmix64((uint64_t)shard * 0x100000001b3ULL ^ xffl_splitmix64((uint64_t)pass)));
    uint64_t a = 1 + h % (un - 1); /* a stride in 1..n-1, made coprime to n */
    while (gcd64(a, un) != 1) a = a + 1 < un ? a + 1 : 1;
    const uint64_t b = xffl_splitmix64(h) % un;
    return (uint64_t)(((unsigned __int128)a * (uint64_t)k + b) % un);
}
int64_t text_loader_tokens(const text_loader *l) { return l->total; }
const char *text_loader_digests(const text_loader *l) { return l->digests; }

xffl_status text_loader_next(text_loader *l, text_cursor *c, int B, int T, int32_t *inputs, int32_t *targets)
{
    XFFL_RETURN_IF(c->seq < 0, XFFL_ERR_INVALID, "data cursor %lld is negative", (long long)c->seq);
    /* A cursor comes from --state or a COMMIT's cursor_end: one past 2^31 passes over the
     * data (or near INT64_MAX, where seq + B overflows) is damage, not progress. */
    const int64_t limit = l->total > (INT64_MAX >> 32) ? INT64_MAX >> 1 : l->total << 31;
    XFFL_RETURN_IF(l->total > 0 && c->seq > limit - B, XFFL_ERR_INVALID,
                   "data cursor %lld out of range (the shards hold %lld tokens; at most %lld sequences are read)",
                   (long long)c->seq, (long long)l->total, (long long)limit);
    for (int b = 0; b < B; b++) {
        int64_t i = c->seq++;
        const shard *sh = &l->sh[i % l->count];
        int64_t nseq = sh->n > 0 ? (sh->n - 1) / T : 0;
        XFFL_RETURN_IF(nseq < 1, XFFL_ERR_INVALID, "shard %s holds %lld tokens, fewer than sequence length + 1 (%d)",
                       sh->path, (long long)sh->n, T + 1);
        const int64_t j = i / l->count;
        const int64_t at = l->strided ? (int64_t)text_loader_stride_index(l->seed, (int)(i % l->count), j / nseq, nseq, j % nseq)
                                      : j % nseq;
        const uint16_t *t = sh->tok + at * T;
        for (int k = 0; k < T; k++) {
            inputs[b * T + k] = t[k];
            targets[b * T + k] = t[k + 1];
        }
    }
    return XFFL_OK;
}

void text_cursor_format(const text_cursor *c, char *out, size_t cap) { snprintf(out, cap, "%lld", (long long)c->seq); }

xffl_status text_cursor_parse(const char *text, text_cursor *c)
{
    long long v;
    int used = 0;
    if (sscanf(text, "%lld%n", &v, &used) != 1 || text[used] != 0 || v < 0)
        return xffl_fail(XFFL_ERR_INVALID, "data cursor '%s' is not a sequence count", text);
    c->seq = v;
    return XFFL_OK;
}
