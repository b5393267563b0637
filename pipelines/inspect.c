#include "pipelines/inspect.h"
#include "pipelines/trust.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "common/log.h"
#include "libckpt/manifest.h"
#include "pipelines/federation.h"
#include "pipelines/tokenizer.h"
#include "pipelines/update.h"

/* Per scan: which chain depth references a key (versions) — kept in a side array
 * parallel to all.items so gc can keep only the `keep` newest. */
typedef struct {
    pipe_store_scan *scan;
    int *vdepth; /* -1: no kept version references it */
} scan_ctx;

static long find_key(const store_listing *l, const char *key)
{
    size_t lo = 0, hi = l->count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(l->items[mid].key, key);
        if (!c) return (long)mid;
        if (c < 0) lo = mid + 1;
        else hi = mid;
    }
    return -1;
}

/* Marks an object a manifest names: as a key from the root, or relative to the
 * manifest's folder. Returns the index or -1. */
static long mark(pipe_store_scan *sc, const char *manifest_key, const char *name)
{
    long i = find_key(&sc->all, name);
    if (i < 0) {
        char k[2 * PIPE_KEY_MAX];
        const char *slash = strrchr(manifest_key, '/');
        int dl = slash ? (int)(slash - manifest_key + 1) : 0;
        snprintf(k, sizeof k, "%.*s%s", dl, manifest_key, name);
        i = find_key(&sc->all, k);
    }
    if (i >= 0) sc->referenced[i] = 1;
    return i;
}

/* 1 when the listing holds anything under versions/v<version>/ (its INDEX or a part). */
static int version_stored(const store_listing *l, int64_t version)
{
    char prefix[64];
    pipe_version_prefix(version, prefix, sizeof prefix);
    size_t lo = 0, hi = l->count, n = strlen(prefix);
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (strcmp(l->items[mid].key, prefix) < 0) lo = mid + 1;
        else hi = mid;
    }
    return lo < l->count && !strncmp(l->items[lo].key, prefix, n);
}

static pipe_obj_kind obj_kind(const char *key)
{
    pipe_key k;
    pipe_key_parse(key, &k);
    return k.obj;
}

static int in_dir(const char *key, const char *dir) { return !strncmp(key, dir, strlen(dir)); }
static int is_commit(const char *key) { return obj_kind(key) == PIPE_OBJ_COMMIT; }
static int is_rejected(const char *key) { return obj_kind(key) == PIPE_OBJ_REJECTED; }

/* The updates in version v's folder that update its INDEX key (pipelines/update.h) go
 * with it: referenced, kept and removed with the version. One that does not load, or
 * updates another INDEX, stays unreferenced: an orphan. */
static void mark_updates(store *s, pipe_store_scan *sc, int *vdepth, int64_t v, const char *key, int depth)
{
    char prefix[64];
    pipe_version_prefix(v, prefix, sizeof prefix);
    for (size_t i = 0; i < sc->all.count; i++) {
        const char *k = sc->all.items[i].key;
        if (!in_dir(k, prefix) || obj_kind(k) != PIPE_OBJ_UPDATE) continue;
        ckpt_manifest *m = NULL;
        if (pipe_manifest_load(s, k, NULL, &m, NULL) != XFFL_OK) continue;
        const char *ix = ckpt_manifest_get(m, "index");
        if (ix && !strcmp(ix, key)) {
            sc->referenced[i] = 1;
            if (vdepth[i] < 0) vdepth[i] = depth;
            for (int o = 0; o < m->n_objects; o++) {
                long oi = mark(sc, k, m->objects[o].name);
                if (oi >= 0 && vdepth[oi] < 0) vdepth[oi] = depth;
            }
        }
        ckpt_manifest_free(m);
    }
}

static XFFL_MUST_USE xffl_status scan_run(store *s, pipe_store_scan *sc, int **vdepth_out)
{
    memset(sc, 0, sizeof *sc);
    *vdepth_out = NULL;
    XFFL_FORWARD(store_list(s, "", &sc->all));
    xffl_status st = store_list_partial(s, "", &sc->partial);
    if (st != XFFL_OK) return st;
    sc->referenced = calloc(sc->all.count + 1, 1);
    int *vdepth = malloc((sc->all.count + 1) * sizeof *vdepth);
    XFFL_RETURN_IF(!sc->referenced || !vdepth, XFFL_ERR_NOMEM, "scanning %s", store_url(s));
    for (size_t i = 0; i < sc->all.count; i++) vdepth[i] = -1;
    *vdepth_out = vdepth;
    long li = find_key(&sc->all, PIPE_LATEST_KEY), fi = find_key(&sc->all, PIPE_FEDERATION_KEY);
    if (li >= 0) sc->referenced[li] = 1;
    if (fi >= 0) sc->referenced[fi] = 1;
    long ti = find_key(&sc->all, PIPE_TOKENIZER_KEY);
    if (ti >= 0) sc->referenced[ti] = 1;
    /* COMMITs (and their base INDEX keys, for walking the chain) */
    char **base_of = calloc(sc->all.count + 1, sizeof *base_of);
    XFFL_RETURN_IF(!base_of, XFFL_ERR_NOMEM, "scanning %s", store_url(s));
    for (size_t i = 0; i < sc->all.count; i++) {
        const char *k = sc->all.items[i].key;
        if (is_rejected(k)) sc->referenced[i] = 1;
        if (!is_commit(k)) continue;
        ckpt_manifest *m = NULL;
        if (pipe_manifest_load(s, k, NULL, &m, NULL) != XFFL_OK) continue;
        sc->referenced[i] = 1;
        for (int o = 0; o < m->n_objects; o++) mark(sc, k, m->objects[o].name);
        const char *b = ckpt_manifest_get(m, "base_index");
        if (b) base_of[i] = strdup(b);
        ckpt_manifest_free(m);
    }
    if (li >= 0) {
        st = pipe_latest_read(s, &sc->latest);
        if (st != XFFL_OK) goto done;
        char key[PIPE_KEY_MAX];
        snprintf(key, sizeof key, "%s", sc->latest.index_key);
        const char *want_sha = sc->latest.index_sha;
        int cap = 0;
        for (int depth = 0;; depth++) {
            long ii = find_key(&sc->all, key);
            if (ii < 0) break; /* never there (verify reports LATEST's); a parent's: checked below */
            ckpt_manifest *m = NULL;
            /* a damaged INDEX stops everything: walking on would orphan, and gc delete,
             * every version before it */
            if ((st = pipe_manifest_load(s, key, want_sha, &m, NULL)) != XFFL_OK) {
                xffl_wrap(st, "version chain from LATEST");
                goto done;
            }
            sc->referenced[ii] = 1;
            vdepth[ii] = depth;
            if (sc->n_kept == cap) {
                cap = cap ? cap * 2 : 16;
                pipe_kept_version *nk = realloc(sc->kept, (size_t)cap * sizeof *nk);
                if (!nk) {
                    ckpt_manifest_free(m);
                    st = xffl_fail(XFFL_ERR_NOMEM, "scanning %s", store_url(s));
                    goto done;
                }
                sc->kept = nk;
            }
            pipe_kept_version *kv = &sc->kept[sc->n_kept++];
            int64_t v = -1;
            /* pipe_manifest_load checked it against the folder; missing is damage */
            if ((st = ckpt_manifest_require_int(m, key, "version", &v)) != XFFL_OK) {
                ckpt_manifest_free(m);
                goto done;
            }
            kv->version = v;
            snprintf(kv->index_key, sizeof kv->index_key, "%s", key);
            for (int o = 0; o < m->n_objects; o++) {
                long oi = mark(sc, key, m->objects[o].name);
                if (oi >= 0 && vdepth[oi] < 0) vdepth[oi] = depth;
            }
            mark_updates(s, sc, vdepth, v, key, depth);
            /* parent: the base every contributor trained on. Once gc removed version
             * v-1 (its folder is empty) the contributors of v may be gone too; while
             * v-1 is stored, every contributor must be there, readable, and agree. */
            char parent[PIPE_KEY_MAX] = "";
            int keep_walking = v > 0 && version_stored(&sc->all, v - 1);
            for (int c = 0; c < m->n_contributors && keep_walking && st == XFFL_OK; c++) {
                const char *ck = m->contributors[c].key;
                long ci = find_key(&sc->all, ck);
                if (ci < 0 || !base_of[ci])
                    st = xffl_fail(XFFL_ERR_CORRUPT, "%s names contributor %s %s, which is %s while version %lld is "
                                   "stored", key, m->contributors[c].facility, ck, ci < 0 ? "missing" : "damaged",
                                   (long long)v - 1);
                else if (parent[0] && strcmp(parent, base_of[ci]) != 0)
                    st = xffl_fail(XFFL_ERR_CORRUPT, "%s: its contributors trained on %s and %s", key, parent,
                                   base_of[ci]);
                else
                    snprintf(parent, sizeof parent, "%s", base_of[ci]);
            }
            if (st == XFFL_OK && keep_walking && !parent[0])
                st = xffl_fail(XFFL_ERR_CORRUPT, "%s names no contributor, but version %lld is stored", key,
                               (long long)v - 1);
            pipe_key pk;
            if (st == XFFL_OK && keep_walking &&
                (pipe_key_parse(parent, &pk) != PIPE_KEY_VERSION || pk.obj != PIPE_OBJ_INDEX || pk.number != v - 1))
                st = xffl_fail(XFFL_ERR_CORRUPT, "%s: its contributors trained on %s, not an INDEX of version %lld",
                               key, parent, (long long)v - 1);
            if (st == XFFL_OK && keep_walking && find_key(&sc->all, parent) < 0)
                st = xffl_fail(XFFL_ERR_CORRUPT, "%s's contributors trained on %s, which is missing while version "
                               "%lld's folder is not empty", key, parent, (long long)v - 1);
            ckpt_manifest_free(m);
            if (st != XFFL_OK) goto done;
            if (!keep_walking) break;
            snprintf(key, sizeof key, "%s", parent);
            want_sha = NULL;
        }
    }
done:
    for (size_t i = 0; i < sc->all.count; i++) free(base_of[i]);
    free(base_of);
    return st;
}

xffl_status pipe_store_scan_run(store *s, pipe_store_scan *scan)
{
    int *vd = NULL;
    xffl_status st = scan_run(s, scan, &vd);
    free(vd);
    if (st != XFFL_OK) pipe_store_scan_free(scan);
    return st;
}

void pipe_store_scan_free(pipe_store_scan *scan)
{
    if (!scan) return;
    store_listing_free(&scan->all);
    store_listing_free(&scan->partial);
    free(scan->referenced);
    free(scan->kept);
    memset(scan, 0, sizeof *scan);
}

/* groups of an INDEX ("groups" header, comma separated; "model" when absent) */
static int index_groups(const ckpt_manifest *m, char names[PIPE_MAX_GROUPS][32], const char *ptrs[PIPE_MAX_GROUPS])
{
    const char *g = ckpt_manifest_get(m, "groups");
    int n = 0;
    if (!g || !*g) g = "model";
    while (*g && n < PIPE_MAX_GROUPS) {
        while (*g == ',' || *g == ' ') g++;
        size_t l = strcspn(g, ", ");
        if (!l) break;
        snprintf(names[n], 32, "%.*s", (int)l, g);
        ptrs[n] = names[n];
        n++;
        g += l;
    }
    return n;
}

/* The updates beside version kv (pipelines/update.h): applied to version prev's model
 * (the version before it, when still kept) and checked against kv's INDEX; without
 * prev, each part's digest and structure. */
static XFFL_MUST_USE xffl_status verify_updates(store *s, const pipe_version_ref *ref, const pipe_federation *f,
                                                const ckpt_param_table *t, const pipe_kept_version *prev, int *n)
{
    float *base = NULL;
    xffl_status st = XFFL_OK;
    pipe_version_ref pref;
    memset(&pref, 0, sizeof pref);
    if (prev && prev->version == ref->version - 1) {
        pref.version = prev->version;
        snprintf(pref.index_key, sizeof pref.index_key, "%s", prev->index_key);
        const char *groups[] = {"model"};
        if (!(base = malloc((size_t)t->total * sizeof *base))) return xffl_fail(XFFL_ERR_NOMEM, "update check");
        float *slabs[] = {base};
        st = pipe_version_fetch(s, &pref, t, 1, groups, slabs, NULL);
    }
    if (st == XFFL_OK)
        st = pipe_update_verify(s, ref, t, f->aggregator_key, base, base ? pref.index_key : NULL, n);
    free(base);
    return st;
}

static XFFL_MUST_USE xffl_status verify_version(store *s, const pipe_kept_version *kv, const pipe_kept_version *prev,
                                                const pipe_version_ref *latest, int *n_updates)
{
    pipe_version_ref ref;
    memset(&ref, 0, sizeof ref);
    ref.version = kv->version;
    snprintf(ref.index_key, sizeof ref.index_key, "%s", kv->index_key);
    ckpt_manifest *m = NULL;
    const char *want = !strcmp(kv->index_key, latest->index_key) ? latest->index_sha : NULL;
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load(s, kv->index_key, want, &m, &raw));
    free(raw.text);
    memcpy(ref.index_sha, raw.sha256, XFFL_SHA256_HEX);
    ckpt_model_config cfg;
    memset(&cfg, 0, sizeof cfg);
    /* the model shape comes from the federation, as for every reader */
    pipe_federation f;
    xffl_status st = pipe_federation_load_for(s, &ref, &f, NULL);
    if (st == XFFL_OK) st = pipe_trust_check_index(s, &f, &ref, NULL); /* the aggregator's INDEX */
    ckpt_param_table *t = NULL;
    if (st == XFFL_OK) st = ckpt_param_table_create(&f.model, &t);
    if (st == XFFL_OK) {
        char names[PIPE_MAX_GROUPS][32];
        const char *groups[PIPE_MAX_GROUPS];
        int n = index_groups(m, names, groups);
        st = pipe_version_fetch(s, &ref, t, n, groups, NULL, NULL);
    }
    if (st == XFFL_OK) st = verify_updates(s, &ref, &f, t, prev, n_updates);
    ckpt_param_table_free(t);
    ckpt_manifest_free(m);
    return st;
}

/* The tokenizer federation.h5 names is in the store, whole; or none is, for a
 * byte-level federation. A federation.h5 that does not load is each version's
 * problem, reported there. */
static XFFL_MUST_USE xffl_status verify_tokenizer(store *s)
{
    pipe_federation f;
    if (pipe_federation_load_latest(s, NULL, &f, NULL) != XFFL_OK) return XFFL_OK;
    return pipe_tokenizer_verify(s, f.tokenizer_sha256);
}

xffl_status pipe_verify_all(store *s, pipe_verify_report *out)
{
    memset(out, 0, sizeof *out);
    pipe_store_scan sc;
    int *vd = NULL;
    xffl_status st = scan_run(s, &sc, &vd);
    free(vd);
    if (st != XFFL_OK) {
        pipe_store_scan_free(&sc);
        return st;
    }
    char first[XFFL_ERRMSG_MAX] = "";
#define PROBLEM(...)                                                   \
    do {                                                               \
        out->n_problems++;                                             \
        if (!first[0]) snprintf(first, sizeof first, __VA_ARGS__);    \
        xffl_log(XFFL_LOG_ERROR, __VA_ARGS__);                         \
    } while (0)
    if (find_key(&sc.all, PIPE_LATEST_KEY) < 0) PROBLEM("no LATEST: not a federation store (run xffl init)");
    else if (sc.n_kept == 0 || strcmp(sc.kept[0].index_key, sc.latest.index_key) != 0)
        PROBLEM("LATEST names %s, which is missing or damaged", sc.latest.index_key);
    if (verify_tokenizer(s) != XFFL_OK) PROBLEM("%s", xffl_errmsg());
    for (int k = 0; k < sc.n_kept; k++) {
        int nu = 0;
        if (verify_version(s, &sc.kept[k], k + 1 < sc.n_kept ? &sc.kept[k + 1] : NULL, &sc.latest, &nu) != XFFL_OK)
            PROBLEM("version %lld (%s): %s", (long long)sc.kept[k].version, sc.kept[k].index_key, xffl_errmsg());
        else {
            out->versions_checked++;
            out->updates_checked += nu;
        }
    }
    for (size_t i = 0; i < sc.all.count; i++) {
        const char *k = sc.all.items[i].key;
        if (is_rejected(k)) {
            if (pipe_rejected_check(s, k, NULL) != XFFL_OK) PROBLEM("%s", xffl_errmsg());
            continue;
        }
        if (!is_commit(k)) continue;
        ckpt_manifest *m = NULL;
        if (pipe_manifest_load(s, k, NULL, &m, NULL) != XFFL_OK) {
            PROBLEM("%s: %s", k, xffl_errmsg());
            continue;
        }
        out->commits_checked++;
        for (int o = 0; o < m->n_objects; o++) {
            void *data = NULL;
            size_t len = 0;
            if (store_get_verified(s, m->objects[o].name, m->objects[o].sha256, &data, &len) != XFFL_OK)
                PROBLEM("%s names %s: %s", k, m->objects[o].name, xffl_errmsg());
            else if (len != m->objects[o].bytes)
                PROBLEM("%s names %s of %llu bytes, found %zu", k, m->objects[o].name,
                        (unsigned long long)m->objects[o].bytes, len);
            else
                out->objects_checked++;
            free(data);
        }
        ckpt_manifest_free(m);
    }
    for (size_t i = 0; i < sc.all.count; i++)
        if (!sc.referenced[i] && (in_dir(sc.all.items[i].key, PIPE_VERSIONS_DIR) ||
                                  in_dir(sc.all.items[i].key, PIPE_ROUNDS_DIR))) {
            out->n_orphans++;
            xffl_log(XFFL_LOG_WARN, "warning: orphan %s (%llu bytes)", sc.all.items[i].key,
                     (unsigned long long)sc.all.items[i].size);
        }
    for (size_t i = 0; i < sc.partial.count; i++) {
        out->n_orphans++;
        xffl_log(XFFL_LOG_WARN, "warning: orphan %s (partial write, %llu bytes)", sc.partial.items[i].key,
                 (unsigned long long)sc.partial.items[i].size);
    }
#undef PROBLEM
    pipe_store_scan_free(&sc);
    if (out->n_problems) return xffl_fail(XFFL_ERR_CORRUPT, "%d problem(s); first: %s", out->n_problems, first);
    return XFFL_OK;
}

/* round number of "rounds/r000005/..." or -1 */
static int64_t key_round(const char *key)
{
    pipe_key k;
    pipe_key_kind kind = pipe_key_parse(key, &k);
    return kind == PIPE_KEY_ROUND || kind == PIPE_KEY_ATTEMPT ? k.number : -1;
}

/* Records e as removed (or removable, dry run) in out; room for it was allocated. */
static XFFL_MUST_USE xffl_status gc_note(pipe_gc_report *out, const store_entry *e, int partial)
{
    pipe_gc_item *it = &out->items[out->removed];
    it->key = strdup(e->key);
    XFFL_RETURN_IF(!it->key, XFFL_ERR_NOMEM, "gc: %s", e->key);
    it->bytes = e->size;
    it->partial = partial;
    out->removed++;
    out->removed_bytes += e->size;
    return XFFL_OK;
}

void pipe_gc_report_free(pipe_gc_report *r)
{
    for (int i = 0; r->items && i < r->removed; i++) free(r->items[i].key);
    free(r->items);
    r->items = NULL;
}

xffl_status pipe_gc(store *s, const pipe_gc_options *o, pipe_gc_report *out)
{
    memset(out, 0, sizeof *out);
    XFFL_RETURN_IF(o->keep < 1, XFFL_ERR_USAGE, "--keep %d must be >= 1", o->keep);
    pipe_store_scan sc;
    int *vdepth = NULL;
    xffl_status st = scan_run(s, &sc, &vdepth);
    if (st != XFFL_OK) goto done;
    XFFL_CHECK_GOTO(st, sc.n_kept > 0 ? XFFL_OK : xffl_fail(XFFL_ERR_CORRUPT,
                                                           "LATEST of %s is missing or damaged: gc removes nothing "
                                                           "(run verify --all)", store_url(s)), done);
    out->items = calloc(sc.all.count + sc.partial.count + 1, sizeof *out->items);
    if (!out->items) {
        st = xffl_fail(XFFL_ERR_NOMEM, "gc of %s", store_url(s));
        goto done;
    }
    int keep = o->keep < sc.n_kept ? o->keep : sc.n_kept;
    int64_t oldest = sc.kept[keep - 1].version;
    int64_t now = (int64_t)time(NULL);
    /* Versions' parts, then their INDEXes, then rounds: a gc killed half-way leaves
     * only states the next scan reads as gc's (docs/design.md "Trust"): an empty
     * version folder below the oldest kept version, whose contributors may be gone. */
    for (int pass = 0; pass < 3; pass++)
    for (size_t i = 0; i < sc.all.count; i++) {
        const store_entry *e = &sc.all.items[i];
        int removable = 0, is_index = obj_kind(e->key) == PIPE_OBJ_INDEX;
        if (in_dir(e->key, PIPE_VERSIONS_DIR)) {
            if (pass != is_index) continue;
            removable = vdepth[i] < 0 || vdepth[i] >= keep;
        } else if (in_dir(e->key, PIPE_ROUNDS_DIR) && pass == 2) {
            int64_t r = key_round(e->key);
            /* round r is reproducible only while version r−1 is kept */
            removable = !sc.referenced[i] || (r >= 0 && r <= oldest);
        }
        if (!removable) continue;
        if ((double)(now - e->mtime) < o->grace) {
            out->kept_young++;
            continue;
        }
        if (!o->dry_run) XFFL_CHECK_GOTO(st, store_delete(s, e->key), done);
        XFFL_CHECK_GOTO(st, gc_note(out, e, 0), done);
    }
    for (size_t i = 0; i < sc.partial.count; i++) {
        const store_entry *e = &sc.partial.items[i];
        if ((double)(now - e->mtime) < o->grace) {
            out->kept_young++;
            continue;
        }
        if (!o->dry_run) XFFL_CHECK_GOTO(st, store_delete(s, e->key), done);
        XFFL_CHECK_GOTO(st, gc_note(out, e, 1), done);
    }
done:
    free(vdepth);
    pipe_store_scan_free(&sc);
    return st;
}
