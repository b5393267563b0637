#include "pipelines/round.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

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
    }
    /* second pass: the COMMIT of every attempt is known; a REJECTED counts only when it
     * is aggregate's verdict on that COMMIT */
    xffl_status st = XFFL_OK;
    for (size_t i = 0; i < ls.count && st == XFFL_OK; i++) {
        pipe_key k;
        if (pipe_key_parse(ls.items[i].key, &k) != PIPE_KEY_ATTEMPT || k.number != round || k.obj != PIPE_OBJ_REJECTED)
            continue;
        pipe_attempt *a = find_or_add(out, k.facility, k.attempt, &cap);
        if (!a || a->rejected_key[0] || !a->commit_key[0]) continue;
        st = pipe_rejected_check(s, ls.items[i].key, a->commit_key);
        if (st == XFFL_OK)
            snprintf(a->rejected_key, sizeof a->rejected_key, "%s", ls.items[i].key);
        else if (st == XFFL_ERR_CORRUPT || st == XFFL_ERR_INVALID || st == XFFL_ERR_NOT_FOUND) {
            xffl_log(XFFL_LOG_WARN, "warning: %s: ignored", xffl_errmsg());
            st = XFFL_OK;
        }
    }
    store_listing_free(&ls);
    if (st != XFFL_OK) {
        pipe_round_listing_free(out);
        return st;
    }
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

xffl_status pipe_rejected_check(store *s, const char *key, const char *commit_key)
{
    void *data = NULL;
    size_t len = 0;
    XFFL_FORWARD(store_get(s, key, &data, &len));
    char sha[XFFL_SHA256_HEX];
    xffl_sha256_hex(data, len, sha);
    const char *base = strrchr(key, '/');
    xffl_status st = ckpt_content_name_check(base ? base + 1 : key, sha, NULL);
    if (st != XFFL_OK) {
        free(data);
        return xffl_fail(st, "%s: content does not match its name (not written by aggregate)", key);
    }
    /* "commit=<key>\nreason=<line>\n" and nothing else */
    const char *t = data, *end = t + len;
    const char *nl1 = len > 7 && !strncmp(t, "commit=", 7) ? memchr(t, '\n', len) : NULL;
    const char *nl2 = nl1 && end - nl1 > 8 && !strncmp(nl1 + 1, "reason=", 7) ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    char ck[PIPE_KEY_MAX] = "";
    int ok = nl2 && nl2 + 1 == end && !memchr(t, 0, len) && nl1 - t - 7 < (long)sizeof ck;
    if (ok) snprintf(ck, sizeof ck, "%.*s", (int)(nl1 - t - 7), t + 7);
    free(data);
    XFFL_RETURN_IF(!ok, XFFL_ERR_INVALID, "%s: not 'commit=<key>' and 'reason=<text>' lines", key);
    if (commit_key) {
        XFFL_RETURN_IF(strcmp(ck, commit_key) != 0, XFFL_ERR_INVALID, "%s: names %s, not its attempt's %s", key, ck,
                       commit_key);
        return XFFL_OK;
    }
    pipe_key kc;
    size_t dl = base ? (size_t)(base - key + 1) : 0;
    XFFL_RETURN_IF(pipe_key_parse(ck, &kc) != PIPE_KEY_ATTEMPT || kc.obj != PIPE_OBJ_COMMIT || strncmp(ck, key, dl) != 0 ||
                       kc.dir_len != dl,
                   XFFL_ERR_INVALID, "%s: names %s, not a COMMIT in its own folder", key, ck);
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
