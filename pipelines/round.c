#include "pipelines/round.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pipe_attempt_state_name(pipe_attempt_state s)
{
    static const char *const n[] = {"partial", "pending", "rejected", "accepted"};
    return (unsigned)s < 4 ? n[s] : "unknown";
}

static int cmp_attempt(const void *a, const void *b)
{
    const pipe_attempt *x = a, *y = b;
    int c = strcmp(x->facility, y->facility);
    return c ? c : (x->attempt > y->attempt) - (x->attempt < y->attempt);
}

static pipe_attempt *find_or_add(pipe_round_listing *l, const char *fac, int attempt, int *cap)
{
    for (int i = 0; i < l->count; i++)
        if (l->items[i].attempt == attempt && !strcmp(l->items[i].facility, fac)) return &l->items[i];
    if (l->count == *cap) {
        int nc = *cap ? *cap * 2 : 8;
        pipe_attempt *n = realloc(l->items, (size_t)nc * sizeof *n);
        if (!n) return NULL;
        l->items = n;
        *cap = nc;
    }
    pipe_attempt *a = &l->items[l->count++];
    memset(a, 0, sizeof *a);
    snprintf(a->facility, sizeof a->facility, "%s", fac);
    a->attempt = attempt;
    return a;
}

xffl_status pipe_round_list(store *s, int64_t round, const ckpt_manifest *accepted_index, pipe_round_listing *out)
{
    memset(out, 0, sizeof *out);
    char prefix[64];
    pipe_round_prefix(round, prefix, sizeof prefix);
    store_listing ls;
    XFFL_FORWARD(store_list(s, prefix, &ls));
    int cap = 0;
    for (size_t i = 0; i < ls.count; i++) {
        pipe_key k;
        if (pipe_key_parse(ls.items[i].key, &k) != PIPE_KEY_ATTEMPT || k.number != round || strchr(k.name, '/'))
            continue;
        pipe_attempt *a = find_or_add(out, k.facility, k.attempt, &cap);
        if (!a) {
            store_listing_free(&ls);
            pipe_round_listing_free(out);
            return xffl_fail(XFFL_ERR_NOMEM, "listing %s", prefix);
        }
        a->n_objects++;
        a->bytes += ls.items[i].size;
        /* keys come sorted, so the first COMMIT seen is the bytewise-first */
        if (k.obj == PIPE_OBJ_COMMIT && !a->commit_key[0])
            snprintf(a->commit_key, sizeof a->commit_key, "%s", ls.items[i].key);
        if (k.obj == PIPE_OBJ_REJECTED && !a->rejected_key[0])
            snprintf(a->rejected_key, sizeof a->rejected_key, "%s", ls.items[i].key);
    }
    store_listing_free(&ls);
    for (int i = 0; i < out->count; i++) {
        pipe_attempt *a = &out->items[i];
        a->state = !a->commit_key[0] ? PIPE_ATTEMPT_PARTIAL
                   : a->rejected_key[0] ? PIPE_ATTEMPT_REJECTED
                                        : PIPE_ATTEMPT_PENDING;
        if (accepted_index && a->commit_key[0])
            for (int c = 0; c < accepted_index->n_contributors; c++)
                if (!strcmp(accepted_index->contributors[c].key, a->commit_key)) a->state = PIPE_ATTEMPT_ACCEPTED;
    }
    if (out->count > 1) qsort(out->items, (size_t)out->count, sizeof *out->items, cmp_attempt);
    return XFFL_OK;
}

void pipe_round_listing_free(pipe_round_listing *l)
{
    if (!l) return;
    free(l->items);
    l->items = NULL;
    l->count = 0;
}

const pipe_attempt *pipe_round_latest_attempt(const pipe_round_listing *l, const char *facility)
{
    const pipe_attempt *best = NULL;
    for (int i = 0; i < l->count; i++)
        if (!strcmp(l->items[i].facility, facility) && (!best || l->items[i].attempt > best->attempt))
            best = &l->items[i];
    return best;
}

xffl_status pipe_reject(store *s, const char *commit_key, const char *reason, char *key_out)
{
    char text[XFFL_ERRMSG_MAX + PIPE_KEY_MAX + 32];
    /* one line: newlines in a reason would forge more header lines */
    int n = snprintf(text, sizeof text, "commit=%s\nreason=", commit_key);
    for (const char *p = reason; *p && n < (int)sizeof text - 2; p++) text[n++] = *p == '\n' ? ' ' : *p;
    text[n++] = '\n';
    text[n] = 0;
    char hex[XFFL_SHA256_HEX], dir[PIPE_KEY_MAX], key[PIPE_KEY_MAX];
    xffl_sha256_hex(text, (size_t)n, hex);
    /* beside the COMMIT: in its attempt folder */
    pipe_key k;
    pipe_key_parse(commit_key, &k);
    snprintf(dir, sizeof dir, "%.*s", (int)k.dir_len, commit_key);
    XFFL_FORWARD(pipe_content_key(dir, PIPE_REJECTED_STEM, hex, NULL, key, sizeof key));
    XFFL_FORWARD(store_put(s, key, text, (size_t)n));
    if (key_out) snprintf(key_out, PIPE_KEY_MAX, "%s", key);
    return XFFL_OK;
}

xffl_status pipe_rejected_reason(store *s, const char *key, char **reason)
{
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(store_get(s, key, &data, &len));
    char *r = strstr(data, "reason=");
    char *out = strdup(r ? r + 7 : (char *)data);
    free(data);
    XFFL_RETURN_IF(!out, XFFL_ERR_NOMEM, "reading %s", key);
    size_t l = strlen(out);
    while (l && out[l - 1] == '\n') out[--l] = 0;
    *reason = out;
    return XFFL_OK;
}
