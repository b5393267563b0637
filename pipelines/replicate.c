/* Replication between stores. See replicate.h. */
#include "pipelines/replicate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/update.h"
#include "pipelines/version.h"

static const char *base_name(const char *key)
{
    const char *s = strrchr(key, '/');
    return s ? s + 1 : key;
}

/* 1 if dst already holds key with this size. */
static int present(store *dst, const char *key, uint64_t size)
{
    uint64_t have = 0;
    return store_head(dst, key, &have, NULL) == XFFL_OK && have == size;
}

typedef struct {
    store *src, *dst;
    char *tmp;
    int jobs;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_replicate_report *r;
} copier;

/* federation.h5: verified against the INDEX's digest; the destination must be empty of
 * one or hold the same bytes. */
static XFFL_MUST_USE xffl_status copy_federation(copier *c, const char *sha)
{
    if (c->fed_sha[0]) {
        XFFL_RETURN_IF(strcmp(c->fed_sha, sha), XFFL_ERR_INVALID,
                       "source versions name two different federation.h5 (%.12s and %.12s)", c->fed_sha, sha);
        return XFFL_OK;
    }
    void *d = NULL, *have = NULL;
    size_t n = 0, hn = 0;
    XFFL_FORWARD(store_get_verified(c->src, PIPE_FEDERATION_KEY, sha, &d, &n));
    xffl_status st = store_get(c->dst, PIPE_FEDERATION_KEY, &have, &hn);
    if (st == XFFL_OK) {
        char hsha[XFFL_SHA256_HEX];
        xffl_sha256_hex(have, hn, hsha);
        st = strcmp(hsha, sha) ? xffl_fail(XFFL_ERR_EXISTS, "%s already holds another federation (federation.h5 %.12s, copying %.12s)",
                                           store_url(c->dst), hsha, sha)
                               : XFFL_OK;
        c->r->skipped++;
    } else if (st == XFFL_ERR_NOT_FOUND) {
        st = store_put(c->dst, PIPE_FEDERATION_KEY, d, n);
        c->r->copied++;
        c->r->bytes += n;
    }
    free(d);
    free(have);
    if (st == XFFL_OK) memcpy(c->fed_sha, sha, XFFL_SHA256_HEX);
    return st;
}

/* The objects m names that dst lacks: a batch down (verified) then up, so local disk
 * holds at most `jobs` of them. tr and paths have room for `jobs`. */
static XFFL_MUST_USE xffl_status copy_objects(copier *c, const ckpt_manifest *m, store_transfer *tr,
                                              char (*paths)[4096], uint64_t *vbytes, size_t *vcopied)
{
    const size_t batch = (size_t)c->jobs;
    for (int i = 0; i < m->n_objects;) {
        size_t nb = 0;
        for (; i < m->n_objects && nb < batch; i++) {
            const ckpt_manifest_object *o = &m->objects[i];
            if (present(c->dst, o->name, o->bytes)) {
                c->r->skipped++;
                continue;
            }
            snprintf(paths[nb], sizeof paths[nb], "%s/%zu-%s", c->tmp, nb, base_name(o->name));
            tr[nb] = (store_transfer){o->name, paths[nb], o->sha256};
            *vbytes += o->bytes;
            nb++;
        }
        if (!nb) continue;
        XFFL_FORWARD(store_get_many(c->src, tr, nb));
        xffl_status st = store_put_many(c->dst, tr, nb);
        for (size_t k = 0; k < nb; k++) unlink(paths[k]);
        XFFL_FORWARD(st);
        *vcopied += nb;
    }
    return XFFL_OK;
}

/* The updates of ref's INDEX (pipelines/update.h): parts, then the manifest, as they
 * are; one that does not load is left behind (it would only be a fallback's cause). */
static XFFL_MUST_USE xffl_status copy_updates(copier *c, const pipe_version_ref *ref, store_transfer *tr,
                                              char (*paths)[4096], uint64_t *vbytes, size_t *vcopied)
{
    if (ref->version == 0) return XFFL_OK;
    store_listing l = {0};
    XFFL_FORWARD(pipe_update_list(c->src, ref->version, &l));
    xffl_status st = XFFL_OK;
    for (size_t i = 0; st == XFFL_OK && i < l.count; i++) {
        ckpt_manifest *u = NULL;
        pipe_manifest_bytes raw = {0};
        if (pipe_manifest_load(c->src, l.items[i].key, NULL, &u, &raw) != XFFL_OK) {
            xffl_log(XFFL_LOG_WARN, "warning: not copying %s: %s", l.items[i].key, xffl_errmsg());
            continue;
        }
        const char *ix = ckpt_manifest_get(u, "index");
        if (ix && !strcmp(ix, ref->index_key)) {
            st = copy_objects(c, u, tr, paths, vbytes, vcopied);
            if (st == XFFL_OK && !present(c->dst, l.items[i].key, raw.len)) {
                st = store_put(c->dst, l.items[i].key, raw.text, raw.len);
                (*vcopied)++;
                *vbytes += raw.len;
            }
        }
        free(raw.text);
        ckpt_manifest_free(u);
    }
    store_listing_free(&l);
    return st;
}

static XFFL_MUST_USE xffl_status copy_version(copier *c, const pipe_version_ref *ref)
{
    pipe_manifest_bytes text = {0};
    ckpt_manifest *m = NULL;
    store_transfer *tr = NULL;
    char (*paths)[4096] = NULL;
    xffl_status st = pipe_manifest_load(c->src, ref->index_key, ref->index_sha, &m, &text);
    if (st != XFFL_OK) goto out;
    const char *fed = ckpt_manifest_get(m, "federation");
    if (fed) XFFL_CHECK_GOTO(st, copy_federation(c, fed), out);
    size_t batch = (size_t)c->jobs;
    tr = calloc(batch, sizeof *tr);
    paths = calloc(batch, sizeof *paths);
    if (!tr || !paths) {
        st = xffl_fail(XFFL_ERR_NOMEM, "copying %s", ref->index_key);
        goto out;
    }
    uint64_t vbytes = 0;
    size_t vcopied = 0;
    XFFL_CHECK_GOTO(st, copy_objects(c, m, tr, paths, &vbytes, &vcopied), out);
    if (!present(c->dst, ref->index_key, text.len)) {
        XFFL_CHECK_GOTO(st, store_put(c->dst, ref->index_key, text.text, text.len), out);
        vcopied++;
        vbytes += text.len;
    } else
        c->r->skipped++;
    /* its updates after it (they name it), before LATEST */
    XFFL_CHECK_GOTO(st, copy_updates(c, ref, tr, paths, &vbytes, &vcopied), out);
    c->r->copied += vcopied;
    c->r->bytes += vbytes;
    xffl_log(XFFL_LOG_INFO, "v%06" PRId64 ": %zu of %d objects copied (%" PRIu64 " bytes)", ref->version, vcopied,
             m->n_objects + 1, vbytes);
out:
    free(text.text);
    free(tr);
    free(paths);
    ckpt_manifest_free(m);
    return st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Every version number that has an INDEX in the source, ascending. */
static XFFL_MUST_USE xffl_status list_versions(store *s, int64_t **out, size_t *n)
{
    store_listing l;
    XFFL_FORWARD(store_list(s, PIPE_VERSIONS_DIR, &l));
    int64_t *v = calloc(l.count + 1, sizeof *v);
    if (!v) {
        store_listing_free(&l);
        return xffl_fail(XFFL_ERR_NOMEM, "listing versions");
    }
    size_t k = 0;
    for (size_t i = 0; i < l.count; i++) {
        pipe_key key;
        if (pipe_key_parse(l.items[i].key, &key) != PIPE_KEY_VERSION || key.obj != PIPE_OBJ_INDEX) continue;
        if (k && v[k - 1] == key.number) continue; /* sorted listing: duplicates are adjacent */
        v[k++] = key.number;
    }
    store_listing_free(&l);
    qsort(v, k, sizeof *v, cmp_i64);
    *out = v;
    *n = k;
    return XFFL_OK;
}

/* LATEST last: the source's LATEST when that version was copied, else a line naming
 * the newest version copied; never moves the destination's LATEST backwards. */
static XFFL_MUST_USE xffl_status copy_latest(copier *c, const pipe_version_ref *newest, pipe_version_ref *written)
{
    pipe_version_ref src_latest, dst_latest, want = *newest;
    xffl_status st = pipe_latest_read(c->src, &src_latest);
    if (st == XFFL_OK && src_latest.version == newest->version && !strcmp(src_latest.index_key, newest->index_key))
        want = src_latest;
    else if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND)
        return st;
    if (!want.index_sha[0]) {
        /* found by listing: its digest is what was fetched (checked against its name) */
        void *d = NULL;
        size_t n = 0;
        XFFL_FORWARD(store_get(c->dst, want.index_key, &d, &n));
        xffl_sha256_hex(d, n, want.index_sha);
        free(d);
    }
    st = pipe_latest_read(c->dst, &dst_latest);
    if (st == XFFL_OK && dst_latest.version >= want.version) {
        *written = dst_latest;
        return XFFL_OK;
    }
    if (st != XFFL_OK && st != XFFL_ERR_NOT_FOUND && st != XFFL_ERR_CORRUPT) return st;
    char line[PIPE_KEY_MAX + 100];
    int n = pipe_latest_format(&want, line, sizeof line);
    XFFL_FORWARD(store_put(c->dst, PIPE_LATEST_KEY, line, (size_t)n));
    c->r->copied++;
    *written = want;
    return XFFL_OK;
}

xffl_status pipe_replicate(store *src, store *dst, const pipe_replicate_options *o, pipe_replicate_report *out)
{
    memset(out, 0, sizeof *out);
    copier c = {.src = src, .dst = dst, .jobs = o->jobs > 0 ? o->jobs : 1, .r = out};
    int64_t *versions = NULL;
    pipe_version_ref ref = {0};
    xffl_status st = xffl_mkdtemp("cp", &c.tmp);
    if (st != XFFL_OK) return st;
    if (o->one_version) {
        st = pipe_version_resolve(src, o->version, &ref);
        if (st == XFFL_OK) st = copy_version(&c, &ref);
        out->versions = 1;
    } else {
        st = list_versions(src, &versions, &out->versions);
        if (st == XFFL_OK && out->versions == 0)
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s holds no version (no versions/v*/INDEX-*)", store_url(src));
        for (size_t i = 0; st == XFFL_OK && i < out->versions; i++) {
            st = pipe_version_resolve(src, versions[i], &ref);
            if (st == XFFL_ERR_INVALID) {
                /* several INDEX objects and LATEST names none: a lost race's leftovers */
                xffl_log(XFFL_LOG_WARN, "skipping version %" PRId64 ": %s", versions[i], xffl_errmsg());
                st = XFFL_OK;
                continue;
            }
            if (st == XFFL_OK) st = copy_version(&c, &ref);
        }
    }
    if (st == XFFL_OK) st = copy_latest(&c, &ref, &out->latest);
    xffl_ignore(xffl_rmtree(c.tmp)); /* best effort: a temporary directory */
    free(c.tmp);
    free(versions);
    return st;
}
