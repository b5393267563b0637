#include "pipelines/history.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pipelines/inspect.h"

static double hdr_double(const ckpt_manifest *m, const char *k)
{
    const char *v = ckpt_manifest_get(m, k);
    return v ? strtod(v, NULL) : 0;
}

static int64_t hdr_int(const ckpt_manifest *m, const char *k)
{
    const char *v = ckpt_manifest_get(m, k);
    return v ? strtoll(v, NULL, 10) : 0;
}

static void fill_from_commit(store *s, const char *key, pipe_history_entry *e)
{
    ckpt_manifest *m = NULL;
    snprintf(e->commit_key, sizeof e->commit_key, "%s", key);
    if (pipe_manifest_load(s, key, NULL, &m, NULL) != XFFL_OK) return;
    e->tokens = hdr_int(m, "tokens");
    e->steps = hdr_int(m, "steps");
    e->attempt = (int)hdr_int(m, "attempt");
    e->loss_first = hdr_double(m, "loss_first");
    e->loss_last = hdr_double(m, "loss_last");
    e->loss_mean = hdr_double(m, "loss_mean");
    e->seconds = hdr_double(m, "seconds");
    for (int i = 0; i < m->n_objects; i++) e->bytes += m->objects[i].bytes;
    const char *f = ckpt_manifest_get(m, "facility");
    if (f && !e->facility[0]) snprintf(e->facility, sizeof e->facility, "%s", f);
    ckpt_manifest_free(m);
}

xffl_status pipe_history_load(store *s, pipe_history *h)
{
    memset(h, 0, sizeof *h);
    XFFL_FORWARD(pipe_federation_load_latest(s, NULL, &h->f, NULL));
    pipe_store_scan sc;
    XFFL_FORWARD(pipe_store_scan_run(s, &sc));
    h->latest = sc.latest;
    xffl_status st = XFFL_OK;
    h->rounds = calloc((size_t)sc.n_kept + 1, sizeof *h->rounds);
    if (!h->rounds) {
        pipe_store_scan_free(&sc);
        return xffl_fail(XFFL_ERR_NOMEM, "history of %s", store_url(s));
    }
    /* kept chain is newest first; rounds ascending */
    for (int k = sc.n_kept - 1; k >= 0 && st == XFFL_OK; k--) {
        if (sc.kept[k].version < 1) continue;
        pipe_history_round *r = &h->rounds[h->n_rounds++];
        r->round = sc.kept[k].version;
        r->done = 1;
        snprintf(r->index_key, sizeof r->index_key, "%s", sc.kept[k].index_key);
        ckpt_manifest *idx = NULL;
        if ((st = pipe_manifest_load(s, r->index_key, NULL, &idx, NULL)) != XFFL_OK) break;
        r->tokens_seen = hdr_int(idx, "tokens_seen");
        for (int i = 0; i < idx->n_objects; i++) r->version_bytes += idx->objects[i].bytes;
        r->e = calloc((size_t)idx->n_contributors + 1, sizeof *r->e);
        if (!r->e) {
            ckpt_manifest_free(idx);
            st = xffl_fail(XFFL_ERR_NOMEM, "history");
            break;
        }
        for (int c = 0; c < idx->n_contributors; c++) {
            pipe_history_entry *e = &r->e[r->n++];
            snprintf(e->facility, sizeof e->facility, "%s", idx->contributors[c].facility);
            e->state = PIPE_ATTEMPT_ACCEPTED;
            fill_from_commit(s, idx->contributors[c].key, e);
        }
        ckpt_manifest_free(idx);
    }
    pipe_store_scan_free(&sc);
    if (st != XFFL_OK) return st;
    /* the round in progress */
    pipe_history_round *r = &h->rounds[h->n_rounds++];
    r->round = h->latest.version + 1;
    pipe_round_listing l;
    XFFL_FORWARD(pipe_round_list(s, r->round, NULL, &l));
    r->e = calloc((size_t)l.count + 1, sizeof *r->e);
    XFFL_RETURN_IF(!r->e, XFFL_ERR_NOMEM, "history");
    for (int i = 0; i < l.count; i++) {
        const pipe_attempt *a = pipe_round_latest_attempt(&l, l.items[i].facility);
        if (a != &l.items[i]) continue;
        pipe_history_entry *e = &r->e[r->n++];
        snprintf(e->facility, sizeof e->facility, "%s", a->facility);
        e->attempt = a->attempt;
        e->state = a->state;
        e->bytes = a->bytes;
        if (a->commit_key[0]) fill_from_commit(s, a->commit_key, e);
        e->attempt = a->attempt;
        if (a->rejected_key[0]) {
            char *reason = NULL;
            if (pipe_rejected_reason(s, a->rejected_key, &reason) == XFFL_OK)
                snprintf(e->reason, sizeof e->reason, "%s", reason);
            free(reason);
        }
    }
    pipe_round_listing_free(&l);
    return XFFL_OK;
}

void pipe_history_free(pipe_history *h)
{
    if (!h) return;
    for (int i = 0; i < h->n_rounds; i++) free(h->rounds[i].e);
    free(h->rounds);
    memset(h, 0, sizeof *h);
}
