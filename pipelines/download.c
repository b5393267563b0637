/* A facility's download of a version: replay, update or full, and the cached base and
 * outer state it needs. See download.h. */
#include "pipelines/download.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "pipelines/aggregate.h"
#include "pipelines/algo.h"
#include "pipelines/update.h"

const char *pipe_download_route_name(pipe_download_route r)
{
    static const char *const names[] = {"full", "update", "replay", "cached"};
    return (unsigned)r < sizeof names / sizeof names[0] ? names[r] : "?";
}

int pipe_download_state_count(const pipe_federation *f)
{
    return pipe_algo_state_count(f->algo.kind);
}

/* --- the cache: <name>.f32 and <name>.ref ("v000004 <INDEX key> <digest>\n") ---
 * The digest is "sha256-64m:<hex>", xffl_sha256_pieces_hex of the file in 64 MiB
 * pieces, hashed in parallel (7b's base and momentum are 54 GB: 34 s on one core at
 * 1.6 GB/s). A plain 64-hex digest, the SHA-256 of the whole file, is what .ref files
 * written before 2026-12-03 hold; it is still read. */
#define CACHE_PIECE ((size_t)64 << 20)
#define CACHE_DIGEST_TAG "sha256-64m:"

typedef struct {
    int64_t version;
    char index_key[PIPE_KEY_MAX];
    char sha[XFFL_SHA256_HEX];
    int pieces; /* 1: sha is CACHE_DIGEST_TAG's; 0: the whole file's */
} cache_ref;

/* NOT_FOUND when there is no .ref (the ordinary first round) */
static XFFL_MUST_USE xffl_status cache_ref_read(const char *dir, const char *name, cache_ref *b)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s.ref", dir, name);
    XFFL_RETURN_IF(access(path, F_OK) != 0, XFFL_ERR_NOT_FOUND, "no %s", path);
    void *d = NULL;
    size_t len = 0;
    XFFL_FORWARD(xffl_read_file(path, &d, &len));
    char line[PIPE_KEY_MAX + 100] = "";
    xffl_status st = XFFL_OK;
    if (len == 0 || len >= sizeof line || ((char *)d)[len - 1] != '\n')
        st = xffl_fail(XFFL_ERR_INVALID, "%s: not one line", path);
    else {
        memcpy(line, d, len - 1);
        char vbuf[32], kbuf[PIPE_KEY_MAX], sbuf[XFFL_SHA256_HEX + 32];
        pipe_key k;
        const size_t tag = strlen(CACHE_DIGEST_TAG);
        int ok = sscanf(line, "v%31s %255s %90s", vbuf, kbuf, sbuf) == 3 && pipe_key_parse(kbuf, &k) == PIPE_KEY_VERSION &&
                 k.obj == PIPE_OBJ_INDEX;
        b->pieces = ok && !strncmp(sbuf, CACHE_DIGEST_TAG, tag);
        const char *hex = b->pieces ? sbuf + tag : sbuf;
        if (!ok || strlen(hex) != 64 || strspn(hex, "0123456789abcdef") != 64)
            st = xffl_fail(XFFL_ERR_INVALID, "%s: malformed (want 'v000004 <INDEX key> " CACHE_DIGEST_TAG "<sha256>')",
                           path);
        else {
            b->version = k.number;
            snprintf(b->index_key, sizeof b->index_key, "%s", kbuf);
            memcpy(b->sha, hex, XFFL_SHA256_HEX);
        }
    }
    free(d);
    return st;
}

/* <name>.f32 of n floats read straight into out, and checked against b's digest
 * unless the caller checks them against an INDEX itself (b NULL) */
static XFFL_MUST_USE xffl_status cache_load(const char *dir, const char *name, const cache_ref *b, int64_t n,
                                            int threads, float *out)
{
    char p[4200], sha[XFFL_SHA256_HEX];
    snprintf(p, sizeof p, "%s/%s.f32", dir, name);
    void *parts[1] = {out};
    const size_t lens[1] = {(size_t)n * 4};
    xffl_status st = xffl_read_file_parts(p, parts, lens, 1, !b || b->pieces ? NULL : sha);
    if (st == XFFL_ERR_INVALID) return xffl_fail(XFFL_ERR_CORRUPT, "%s: not %zu bytes (a damaged cache)", p, lens[0]);
    XFFL_FORWARD(st);
    if (!b) return XFFL_OK;
    if (b->pieces) XFFL_FORWARD(xffl_sha256_pieces_hex(out, lens[0], CACHE_PIECE, threads, sha));
    XFFL_RETURN_IF(strcmp(sha, b->sha) != 0, XFFL_ERR_CORRUPT, "%s: digest %.12s, but %s.ref says %.12s (a damaged cache)",
                   p, sha, name, b->sha);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cache_drop(const char *dir, const char *name)
{
    char p[4200];
    snprintf(p, sizeof p, "%s/%s.ref", dir, name);
    XFFL_RETURN_IF(unlink(p) != 0 && errno != ENOENT, XFFL_ERR_IO, "remove %s: %s", p, strerror(errno));
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status cache_save(const char *dir, const char *name, const pipe_version_ref *ref,
                                            const float *x, int64_t n)
{
    /* no .ref while the floats change: a job killed in between leaves no cache */
    XFFL_FORWARD(cache_drop(dir, name));
    char p[4200], line[PIPE_KEY_MAX + 100], sha[XFFL_SHA256_HEX];
    const size_t len = (size_t)n * 4;
    XFFL_FORWARD(xffl_sha256_pieces_hex(x, len, CACHE_PIECE, 0, sha));
    snprintf(p, sizeof p, "%s/%s.f32", dir, name);
    /* not fsync'd: the .ref's digest is checked on every load, and the store has the
     * version again (xffl_write_cache_file) */
    XFFL_FORWARD(xffl_write_cache_file(p, x, len));
    int k = snprintf(line, sizeof line, "v%06" PRId64 " %s " CACHE_DIGEST_TAG "%s\n", ref->version, ref->index_key, sha);
    snprintf(p, sizeof p, "%s/%s.ref", dir, name);
    return xffl_write_cache_file(p, line, (size_t)k);
}

xffl_status pipe_base_save(const char *state_dir, const pipe_version_ref *ref, const ckpt_param_table *t,
                           const float *model, const float *state, int n_state)
{
    XFFL_FORWARD(cache_drop(state_dir, "outer"));
    XFFL_FORWARD(cache_save(state_dir, "base", ref, model, t->total));
    if (!state || n_state == 0) return XFFL_OK;
    return cache_save(state_dir, "outer", ref, state, (int64_t)n_state * t->total);
}

/* --- replay --- */

/* where train keeps the parts of the delta it sent last (pipe_commit_spec.keep_dir) */
/* The cache of version `want` in dir: base.ref (NOT_FOUND naming what it holds when
 * it is of another version) and, when the algorithm keeps ns > 0 groups of outer state,
 * outer.ref of the same INDEX. outer_ok NULL: the outer state is required (NOT_FOUND
 * naming the file when it is absent or of another INDEX); else *outer_ok says whether
 * it is there. */
static XFFL_MUST_USE xffl_status cache_refs(const char *dir, int64_t want, int ns, cache_ref *b, cache_ref *ob,
                                            int *outer_ok)
{
    XFFL_FORWARD(cache_ref_read(dir, "base", b));
    XFFL_RETURN_IF(b->version != want, XFFL_ERR_NOT_FOUND, "%s/base.ref holds v%06" PRId64 ", not v%06" PRId64, dir,
                   b->version, want);
    if (outer_ok) *outer_ok = ns == 0;
    if (ns == 0) return XFFL_OK;
    xffl_status st = cache_ref_read(dir, "outer", ob);
    if (st == XFFL_OK && strcmp(ob->index_key, b->index_key) != 0)
        st = xffl_fail(XFFL_ERR_NOT_FOUND, "%s/outer.ref is not of %s", dir, b->index_key);
    if (outer_ok && st == XFFL_ERR_NOT_FOUND) return XFFL_OK;
    XFFL_FORWARD(st);
    if (outer_ok) *outer_ok = 1;
    return XFFL_OK;
}

static void sent_dir(const char *state_dir, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s", state_dir, PIPE_DOWNLOAD_SENT_DIR);
}

/* Slabs x[g] (ng groups of t->total floats, one after another) against the INDEX's
 * "<groups[g]>/<tensor>" lines, the tensors hashed in parallel; the first mismatch in
 * table order is named, with `how` the floats came ("replayed", "cached") and, for a
 * cache, its file. */
static XFFL_MUST_USE xffl_status check_groups(const ckpt_manifest *idx, const char *index_key, int ng,
                                              const char *const *groups, const ckpt_param_table *t, const float *x,
                                              int threads, const char *how, const char *file)
{
    const int n = ng * t->count;
    char(*got)[XFFL_SHA256_HEX] = malloc((size_t)(n ? n : 1) * sizeof *got);
    XFFL_RETURN_IF(!got, XFFL_ERR_NOMEM, "checking %s", index_key);
#pragma omp parallel for schedule(dynamic) num_threads(xffl_threads(threads))
    for (int i = 0; i < n; i++) {
        const ckpt_param *p = &t->params[i % t->count];
        xffl_sha256_hex(x + (size_t)(i / t->count) * (size_t)t->total + p->offset, (size_t)p->numel * 4, got[i]);
    }
    xffl_status st = XFFL_OK;
    for (int i = 0; i < n && st == XFFL_OK; i++) {
        char name[CKPT_NAME_MAX + 32];
        snprintf(name, sizeof name, "%s/%s", groups[i / t->count], t->params[i % t->count].name);
        int ti = ckpt_manifest_find_tensor(idx, name);
        if (ti < 0) st = xffl_fail(XFFL_ERR_INVALID, "tensor %s is not listed in %s", name, index_key);
        else if (strcmp(idx->tensors[ti].sha256, got[i]) != 0)
            st = file ? xffl_fail(XFFL_ERR_CORRUPT,
                                  "%s: digest %.12s of tensor %s (%s) differs from %s (%.12s): a damaged cache", file,
                                  got[i], name, how, index_key, idx->tensors[ti].sha256)
                      : xffl_fail(XFFL_ERR_CORRUPT, "tensor %s %s: digest %.12s differs from %s (%.12s)", name, how,
                                  got[i], index_key, idx->tensors[ti].sha256);
    }
    free(got);
    return st;
}

/* model and (when ns > 0) the ns outer-state slabs against the INDEX; dir: the cache
 * they were read from (base.f32, outer.f32), named in a mismatch, or NULL */
static XFFL_MUST_USE xffl_status check_version(const ckpt_manifest *idx, const char *index_key, const pipe_federation *f,
                                               int ns, const ckpt_param_table *t, const float *model,
                                               const float *state, int threads, const char *how, const char *dir)
{
    char file[4200];
    const char *model_group[1] = {"model"};
    snprintf(file, sizeof file, "%s/base.f32", dir ? dir : "");
    XFFL_FORWARD(check_groups(idx, index_key, 1, model_group, t, model, threads, how, dir ? file : NULL));
    const char *groups[PIPE_MAX_GROUPS];
    for (int g = 0; g < ns; g++) groups[g] = pipe_algo_state_group(f->algo.kind, g);
    snprintf(file, sizeof file, "%s/outer.f32", dir ? dir : "");
    return ns > 0 ? check_groups(idx, index_key, ns, groups, t, state, threads, how, dir ? file : NULL) : XFFL_OK;
}

/* What a replay would download: every contributor's COMMIT and parts (*cost); the
 * COMMITs read to learn it are counted in *fetched. */
static XFFL_MUST_USE xffl_status replay_cost(store *s, const pipe_download_options *o, const ckpt_manifest *idx,
                                             uint64_t *cost, uint64_t *fetched)
{
    *cost = 0;
    XFFL_RETURN_IF(idx->n_contributors < 1, XFFL_ERR_NOT_FOUND, "the INDEX names no contributor");
    char sent[4200];
    sent_dir(o->state_dir, sent, sizeof sent);
    for (int i = 0; i < idx->n_contributors; i++) {
        uint64_t parts = 0, manifest = 0;
        XFFL_FORWARD(pipe_contrib_bytes(s, o->f, idx->contributors[i].key, sent, &parts, &manifest));
        *cost += parts + manifest;
        *fetched += manifest;
    }
    return XFFL_OK;
}

/* model and state (version−1's on entry) become version's: the COMMITs keys[0..k)
 * (sorted by facility) combined as the aggregation job combines them. Nothing is
 * checked against an INDEX here. On failure model and state hold no usable value. */
static XFFL_MUST_USE xffl_status replay_core(store *s, int64_t version, const cache_ref *base,
                                             const pipe_download_options *o, int k, const char *const *keys,
                                             const ckpt_param_table *t, float *model, float *state, uint64_t *bytes)
{
    const pipe_federation *f = o->f;
    const int ns = pipe_download_state_count(f);
    pipe_version_ref b = {.version = base->version};
    snprintf(b.index_key, sizeof b.index_key, "%s", base->index_key);
    pipe_contrib *c = calloc((size_t)k, sizeof *c);
    float *out = xffl_alloc_big((size_t)t->total * 4);
    xffl_status st = c && out ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "replay buffers");
    char sent[4200];
    sent_dir(o->state_dir, sent, sizeof sent);
    for (int i = 0; st == XFFL_OK && i < k; i++) {
        int bad = 0;
        st = pipe_contrib_load_from(s, f, o->fed_sha, t, version, &b, keys[i], sent, &c[i], &bad);
        *bytes += c[i].fetched_bytes;
    }
    float *sl[PIPE_ALGO_MAX_STATE] = {0};
    for (int g = 0; g < ns; g++) sl[g] = state + (size_t)g * (size_t)t->total;
    if (st == XFFL_OK) st = pipe_combine(f, version, k, c, model, sl, t->total, o->threads, out, NULL);
    if (st == XFFL_OK) memcpy(model, out, (size_t)t->total * 4);
    for (int i = 0; c && i < k; i++) pipe_contrib_clear(&c[i]);
    free(c);
    xffl_free_big(out);
    return st;
}

/* model and state against version ref's INDEX: its contributors are keys[0..k) and
 * every model and outer-state tensor has its digest. */
static XFFL_MUST_USE xffl_status check_replay(const pipe_version_ref *ref, const ckpt_manifest *idx,
                                              const pipe_download_options *o, int k, const char *const *keys,
                                              const ckpt_param_table *t, const float *model, const float *state)
{
    XFFL_RETURN_IF(idx->n_contributors != k, XFFL_ERR_INVALID, "%s names %d contributors, the replay combined %d",
                   ref->index_key, idx->n_contributors, k);
    for (int i = 0; i < k; i++)
        XFFL_RETURN_IF(strcmp(idx->contributors[i].key, keys[i]) != 0, XFFL_ERR_INVALID,
                       "%s combined %s, the replay %s", ref->index_key, idx->contributors[i].key, keys[i]);
    return check_version(idx, ref->index_key, o->f, pipe_download_state_count(o->f), t, model, state, o->threads,
                         "replayed", NULL);
}

/* v's INDEX's contributor keys, in its order */
static const char **index_keys(const ckpt_manifest *idx)
{
    const char **keys = calloc((size_t)idx->n_contributors + 1, sizeof *keys);
    for (int i = 0; keys && i < idx->n_contributors; i++) keys[i] = idx->contributors[i].key;
    return keys;
}

/* model (v−1's on entry) and state (v−1's) become v's, replayed from the deltas v's
 * INDEX names and checked against it. */
static XFFL_MUST_USE xffl_status replay(store *s, const pipe_version_ref *ref, const cache_ref *base,
                                        const pipe_download_options *o, const ckpt_manifest *idx,
                                        const ckpt_param_table *t, float *model, float *state, uint64_t *bytes)
{
    const char **keys = index_keys(idx);
    XFFL_RETURN_IF(!keys, XFFL_ERR_NOMEM, "replay");
    const int k = idx->n_contributors;
    xffl_status st = replay_core(s, ref->version, base, o, k, keys, t, model, state, bytes);
    if (st == XFFL_OK) st = check_replay(ref, idx, o, k, keys, t, model, state);
    free(keys);
    return st;
}

/* --- the routes --- */

/* The full version: the model, and the outer state its parts hold beside it (zeros
 * when the version holds none: version 0). */
static XFFL_MUST_USE xffl_status full(store *s, const pipe_version_ref *ref, const pipe_download_options *o,
                                      const ckpt_manifest *idx, const ckpt_param_table *t, float *model, float *state,
                                      pipe_download *d)
{
    const char *groups[PIPE_MAX_GROUPS] = {"model"};
    float *slabs[PIPE_MAX_GROUPS] = {model};
    int ng = 1, ns = state ? pipe_download_state_count(o->f) : 0;
    int has_state = ns > 0 && pipe_index_has_group(idx, pipe_algo_state_group(o->f->algo.kind, 0));
    for (int g = 0; has_state && g < ns; g++) {
        groups[ng] = pipe_algo_state_group(o->f->algo.kind, g);
        slabs[ng++] = state + (size_t)g * (size_t)t->total;
    }
    pipe_version_info info;
    XFFL_FORWARD(pipe_version_fetch(s, ref, t, ng, groups, slabs, &info));
    d->bytes += info.stored_bytes;
    pipe_version_info_clear(&info);
    if (ns > 0 && !has_state) memset(state, 0, (size_t)ns * (size_t)t->total * 4);
    d->state_known = state != NULL;
    d->route = PIPE_DOWNLOAD_FULL;
    xffl_log(XFFL_LOG_INFO, "fetched v%06" PRId64 " in full: %" PRIu64 " bytes", ref->version, d->full_bytes);
    return XFFL_OK;
}

/* The cache in o->state_dir holds version ref itself (a facility's retry of a round;
 * the aggregation job's base, the version it wrote last): nothing to download. Checked
 * against ref's INDEX like a replay. NOT_FOUND (nothing loaded) when it holds another
 * version, or lacks the outer state ref's INDEX has and the caller wants. */
static XFFL_MUST_USE xffl_status cached(const pipe_version_ref *ref, const pipe_download_options *o,
                                        const ckpt_manifest *idx, const ckpt_param_table *t, float *model,
                                        float *state, pipe_download *d)
{
    const char *dir = o->state_dir;
    const pipe_algo_kind kind = o->f->algo.kind;
    const int ns = state ? pipe_download_state_count(o->f) : 0;
    /* version 0 holds no outer state: zeros, as in full() */
    const int has_state = ns > 0 && pipe_index_has_group(idx, pipe_algo_state_group(kind, 0));
    cache_ref b, ob;
    XFFL_FORWARD(cache_refs(dir, ref->version, has_state ? ns : 0, &b, &ob, NULL));
    XFFL_RETURN_IF(strcmp(b.index_key, ref->index_key) != 0, XFFL_ERR_NOT_FOUND, "%s/base.ref is of %s, not %s", dir,
                   b.index_key, ref->index_key);
    /* v's INDEX checks every tensor: the files' own digests would be read twice */
    XFFL_FORWARD(cache_load(dir, "base", NULL, t->total, o->threads, model));
    if (has_state) XFFL_FORWARD(cache_load(dir, "outer", NULL, (int64_t)ns * t->total, o->threads, state));
    XFFL_FORWARD(
        check_version(idx, ref->index_key, o->f, has_state ? ns : 0, t, model, state, o->threads, "cached", dir));
    if (ns > 0 && !has_state) memset(state, 0, (size_t)ns * (size_t)t->total * 4);
    d->state_known = state != NULL;
    d->route = PIPE_DOWNLOAD_CACHED;
    xffl_log(XFFL_LOG_INFO, "v%06" PRId64 " from %s/base.f32: nothing downloaded", ref->version, dir);
    return XFFL_OK;
}

/* Replay or update from the cache in o->state_dir, whichever downloads less; NOT_FOUND
 * (nothing tried) when neither can. */
static XFFL_MUST_USE xffl_status from_cache(store *s, const pipe_version_ref *ref, const pipe_download_options *o,
                                            const ckpt_manifest *idx, const ckpt_param_table *t, float *model,
                                            float *state, pipe_download *d)
{
    const char *dir = o->state_dir;
    const char *akey = o->f->aggregator_key;
    const int ns = pipe_download_state_count(o->f);
    cache_ref b, ob;
    int can_replay; /* replay needs v−1's outer state: cached beside the base, for the same INDEX */
    XFFL_FORWARD(cache_refs(dir, ref->version - 1, state ? ns : 0, &b, &ob, &can_replay));
    if (!state && ns > 0) can_replay = 0; /* no buffer for the outer state: not read */
    /* the cheaper route: the manifests read to compare are downloads too. With no
     * update stored (aggregate --no-update) the replay is the only route: it is not
     * priced, which would read every contributor's COMMIT twice */
    uint64_t rb = 0, ub = 0;
    xffl_status ust = pipe_update_size(s, ref, b.index_key, akey, &ub, &d->bytes);
    if (can_replay && ust == XFFL_OK && replay_cost(s, o, idx, &rb, &d->bytes) != XFFL_OK) can_replay = 0;
    if (!can_replay && ust != XFFL_OK) return ust;
    XFFL_FORWARD(cache_load(dir, "base", &b, t->total, o->threads, model));
    if (can_replay && (ust != XFFL_OK || rb < ub)) {
        if (ns > 0) XFFL_FORWARD(cache_load(dir, "outer", &ob, (int64_t)ns * t->total, o->threads, state));
        XFFL_FORWARD(replay(s, ref, &b, o, idx, t, model, state, &d->bytes));
        d->route = PIPE_DOWNLOAD_REPLAY;
        d->state_known = 1;
        xffl_log(XFFL_LOG_INFO,
                 "fetched v%06" PRId64 " by replaying its aggregation from v%06" PRId64 " and %d deltas: %" PRIu64
                 " bytes instead of %" PRIu64 " (%.3fx)",
                 ref->version, b.version, idx->n_contributors, d->bytes, d->full_bytes,
                 d->full_bytes ? (double)d->bytes / (double)d->full_bytes : 0.0);
        return XFFL_OK;
    }
    uint64_t got = 0;
    xffl_status st = pipe_update_apply(s, ref, b.index_key, akey, t, model, &got, d->via_key);
    d->bytes += got;
    XFFL_FORWARD(st);
    d->route = PIPE_DOWNLOAD_UPDATE;
    xffl_log(XFFL_LOG_INFO, "fetched v%06" PRId64 " as an update from v%06" PRId64 " (%s): %" PRIu64 " bytes instead of %" PRIu64
             " (%.3fx)", ref->version, b.version, d->via_key, d->bytes, d->full_bytes,
             d->full_bytes ? (double)d->bytes / (double)d->full_bytes : 0.0);
    return XFFL_OK;
}

xffl_status pipe_model_download(store *s, const pipe_version_ref *ref, const pipe_download_options *o,
                                const ckpt_param_table *t, float *model, float *state, pipe_download *d)
{
    memset(d, 0, sizeof *d);
    ckpt_manifest *idx = NULL;
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load(s, ref->index_key, ref->index_sha, &idx, &raw));
    free(raw.text);
    for (int i = 0; i < idx->n_objects; i++) d->full_bytes += idx->objects[i].bytes;
    xffl_status st = XFFL_ERR_NOT_FOUND;
    if (!o->state_dir) snprintf(d->why_full, sizeof d->why_full, "no --state directory");
    else {
        st = cached(ref, o, idx, t, model, state, d);
        if (st == XFFL_ERR_NOT_FOUND && ref->version == 0)
            st = xffl_fail(XFFL_ERR_NOT_FOUND, "version 0 is not made from another");
        else if (st == XFFL_ERR_NOT_FOUND)
            st = from_cache(s, ref, o, idx, t, model, state, d);
        if (st != XFFL_OK) {
            snprintf(d->why_full, sizeof d->why_full, "%s", xffl_errmsg());
            /* no cache or no update is the ordinary first round; damage is worth a warning */
            if (st == XFFL_ERR_NOT_FOUND)
                xffl_log(XFFL_LOG_INFO, "v%06" PRId64 " in full: %s", ref->version, d->why_full);
            else
                xffl_log(XFFL_LOG_WARN, "warning: %s; downloading the full version", d->why_full);
            d->route = PIPE_DOWNLOAD_FULL;
            d->via_key[0] = 0;
        }
    }
    if (st != XFFL_OK) st = full(s, ref, o, idx, t, model, state, d);
    ckpt_manifest_free(idx);
    return st;
}

xffl_status pipe_download_ahead(store *s, int64_t version, const pipe_download_options *o, int k,
                                const char *const *commit_keys, const ckpt_param_table *t, float *model, float *state,
                                pipe_download *d)
{
    memset(d, 0, sizeof *d);
    XFFL_RETURN_IF(!o->state_dir, XFFL_ERR_USAGE, "training ahead needs --state DIR (the version it trained from)");
    const int ns = pipe_download_state_count(o->f);
    XFFL_RETURN_IF(ns > 0 && !state, XFFL_ERR_INTERNAL, "no buffer for the outer state");
    cache_ref b, ob;
    XFFL_FORWARD(cache_refs(o->state_dir, version - 1, ns, &b, &ob, NULL));
    XFFL_FORWARD(cache_load(o->state_dir, "base", &b, t->total, o->threads, model));
    if (ns > 0) XFFL_FORWARD(cache_load(o->state_dir, "outer", &ob, (int64_t)ns * t->total, o->threads, state));
    XFFL_FORWARD(replay_core(s, version, &b, o, k, commit_keys, t, model, state, &d->bytes));
    d->route = PIPE_DOWNLOAD_REPLAY;
    d->state_known = 1;
    xffl_log(XFFL_LOG_INFO, "replayed v%06" PRId64 " ahead of its INDEX from v%06" PRId64 " and %d deltas: %" PRIu64 " bytes",
             version, b.version, k, d->bytes);
    return XFFL_OK;
}

xffl_status pipe_download_matches(store *s, const pipe_version_ref *ref, const pipe_download_options *o, int k,
                                  const char *const *commit_keys, const ckpt_param_table *t, const float *model,
                                  const float *state)
{
    ckpt_manifest *idx = NULL;
    XFFL_FORWARD(pipe_manifest_load(s, ref->index_key, ref->index_sha, &idx, NULL));
    xffl_status st = check_replay(ref, idx, o, k, commit_keys, t, model, state);
    ckpt_manifest_free(idx);
    return st;
}
