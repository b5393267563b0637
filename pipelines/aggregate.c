#include "pipelines/aggregate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <time.h>
#include "common/log.h"
#include "common/util.h"
#include "libckpt/delta.h"

void pipe_contrib_clear(pipe_contrib *c)
{
    if (!c) return;
    xffl_free_big(c->delta);
    memset(c, 0, sizeof *c);
}

int pipe_index_has_group(const ckpt_manifest *index, const char *group)
{
    const char *g = index ? ckpt_manifest_get(index, "groups") : NULL;
    size_t n = strlen(group);
    while (g && *g) {
        while (*g == ',' || *g == ' ') g++;
        size_t l = strcspn(g, ", ");
        if (l == n && !strncmp(g, group, n)) return 1;
        g += l;
    }
    return 0;
}

/* A header that must equal want, else INVALID naming the COMMIT. */
static XFFL_MUST_USE xffl_status expect_header(const ckpt_manifest *m, const char *key, const char *name, const char *want,
                                 const char *what)
{
    const char *v;
    XFFL_FORWARD(ckpt_manifest_require(m, key, name, &v));
    XFFL_RETURN_IF(strcmp(v, want) != 0, XFFL_ERR_INVALID, "%s: %s is '%s', expected '%s' (%s)", key, name, v, want,
                   what);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status header_double(const ckpt_manifest *m, const char *key, const char *name, double *out)
{
    const char *v = ckpt_manifest_get(m, name);
    *out = 0;
    if (!v) return XFFL_OK;
    char *end;
    *out = strtod(v, &end);
    XFFL_RETURN_IF(end == v || *end, XFFL_ERR_INVALID, "%s: %s '%s' is not a number", key, name, v);
    return XFFL_OK;
}

static int is_data_error(xffl_status st)
{
    return st == XFFL_ERR_INVALID || st == XFFL_ERR_CORRUPT || st == XFFL_ERR_NOT_FOUND;
}

static XFFL_MUST_USE xffl_status check_commit(const ckpt_manifest *m, const pipe_federation *f, const char *fed_sha, int64_t round,
                                const pipe_version_ref *base, const char *key, pipe_contrib *c)
{
    char buf[64];
    /* format and format_version: checked by pipe_manifest_load */
    snprintf(buf, sizeof buf, "%lld", (long long)round);
    XFFL_FORWARD(expect_header(m, key, "round", buf, "wrong round"));
    const char *fac;
    XFFL_FORWARD(ckpt_manifest_require(m, key, "facility", &fac));
    XFFL_RETURN_IF(pipe_federation_facility_index(f, fac) < 0, XFFL_ERR_INVALID,
                   "%s: facility '%s' is not in the federation", key, fac);
    /* the folder name must agree with the header: no facility speaks for another */
    char folder[PIPE_KEY_MAX];
    pipe_facility_prefix(round, fac, folder, sizeof folder);
    XFFL_RETURN_IF(strncmp(key, folder, strlen(folder)) != 0, XFFL_ERR_INVALID,
                   "%s: facility '%s' does not match its folder", key, fac);
    XFFL_FORWARD(expect_header(m, key, "base_index", base->index_key, "stale base: built on another version"));
    snprintf(buf, sizeof buf, "%lld", (long long)base->version);
    XFFL_FORWARD(expect_header(m, key, "base_version", buf, "stale base"));
    XFFL_FORWARD(expect_header(m, key, "federation", fed_sha, "made for another federation.h5"));
    XFFL_FORWARD(expect_header(m, key, "encoding", ckpt_codec_name(f->encoding), "encoding differs from federation"));
    int64_t claimed;
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "tokens", &claimed));
    XFFL_FORWARD(ckpt_manifest_require_int(m, key, "steps", &c->steps));
    XFFL_RETURN_IF(claimed <= 0, XFFL_ERR_INVALID, "%s: tokens %lld must be > 0", key, (long long)claimed);
    /* tokens= is a claim: the weight is what federation.h5 has every facility train */
    XFFL_FORWARD(pipe_federation_round_tokens(f, round, &c->tokens));
    if (claimed != c->tokens)
        xffl_log(XFFL_LOG_WARN, "note: %s claims tokens=%lld; weighted as federation.h5's %lld", key,
                 (long long)claimed, (long long)c->tokens);
    XFFL_RETURN_IF(m->n_objects < 1, XFFL_ERR_INVALID, "%s: names no delta part", key);
    XFFL_FORWARD(header_double(m, key, "loss_first", &c->loss_first));
    XFFL_FORWARD(header_double(m, key, "loss_last", &c->loss_last));
    XFFL_FORWARD(header_double(m, key, "loss_mean", &c->loss_mean));
    XFFL_FORWARD(header_double(m, key, "seconds", &c->seconds));
    snprintf(c->facility, sizeof c->facility, "%s", fac);
    snprintf(c->commit_key, sizeof c->commit_key, "%s", key);
    /* parts must live in the COMMIT's own folder (gc and verify rely on it) */
    const char *slash = strrchr(key, '/');
    size_t dl = slash ? (size_t)(slash - key + 1) : 0;
    for (int i = 0; i < m->n_objects; i++) {
        XFFL_RETURN_IF(strncmp(m->objects[i].name, key, dl) != 0 || strchr(m->objects[i].name + dl, '/'),
                       XFFL_ERR_INVALID, "%s: object %s is outside its attempt folder", key, m->objects[i].name);
        c->bytes += m->objects[i].bytes;
    }
    return XFFL_OK;
}

/* A COMMIT, signed by the key federation.h5 records for the facility whose folder it
 * is in (a facility outside the federation has none: check_commit refuses it). */
static XFFL_MUST_USE xffl_status load_commit(store *s, const pipe_federation *f, const char *commit_key,
                                             ckpt_manifest **m, uint64_t *len)
{
    pipe_key k;
    const char *pub = NULL;
    if (pipe_federation_signed(f) && pipe_key_parse(commit_key, &k) == PIPE_KEY_ATTEMPT) {
        int i = pipe_federation_facility_index(f, k.facility);
        if (i >= 0) pub = f->facility_keys[i];
    }
    pipe_manifest_bytes raw;
    XFFL_FORWARD(pipe_manifest_load_signed(s, commit_key, NULL, pub, m, &raw));
    free(raw.text);
    if (len) *len = raw.len;
    return XFFL_OK;
}

xffl_status pipe_contrib_load(store *s, const pipe_federation *f, const char *fed_sha, const ckpt_param_table *t,
                              int64_t round, const pipe_version_ref *base, const char *commit_key, pipe_contrib *c,
                              int *bad)
{
    return pipe_contrib_load_from(s, f, fed_sha, t, round, base, commit_key, NULL, c, bad);
}

/* dir/<the key's last component> */
static void local_path(const char *dir, const char *key, char *out, size_t cap)
{
    const char *b = strrchr(key, '/');
    snprintf(out, cap, "%s/%s", dir, b ? b + 1 : key);
}

xffl_status pipe_contrib_load_from(store *s, const pipe_federation *f, const char *fed_sha, const ckpt_param_table *t,
                                   int64_t round, const pipe_version_ref *base, const char *commit_key,
                                   const char *local_dir, pipe_contrib *c, int *bad)
{
    memset(c, 0, sizeof *c);
    *bad = 0;
    ckpt_manifest *m = NULL;
    uint64_t mlen = 0;
    xffl_status st = load_commit(s, f, commit_key, &m, &mlen);
    if (st != XFFL_OK) {
        *bad = st == XFFL_ERR_INVALID || st == XFFL_ERR_CORRUPT;
        return st;
    }
    char *tmp = NULL;
    char **paths = NULL;
    store_transfer *tr = NULL;
    if ((st = check_commit(m, f, fed_sha, round, base, commit_key, c)) != XFFL_OK) {
        *bad = 1;
        goto done;
    }
    c->manifest_bytes = mlen;
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("xffl-agg", &tmp), done);
    paths = calloc((size_t)m->n_objects, sizeof *paths);
    tr = calloc((size_t)m->n_objects, sizeof *tr);
    c->delta = xffl_alloc_big((size_t)t->total * sizeof(float));
    if (!paths || !tr || !c->delta) {
        st = xffl_fail(XFFL_ERR_NOMEM, "loading %s", commit_key);
        goto done;
    }
    size_t n_get = 0;
    c->fetched_bytes = c->manifest_bytes;
    for (int i = 0; i < m->n_objects; i++) {
        /* a part already here (the facility's own, pipelines/download.h) when its bytes
         * are the COMMIT's; else fetched */
        char lp[4200], hex[XFFL_SHA256_HEX];
        uint64_t size = 0;
        if (local_dir) local_path(local_dir, m->objects[i].name, lp, sizeof lp);
        const int here = local_dir && access(lp, F_OK) == 0 && xffl_sha256_file(lp, hex, &size) == XFFL_OK &&
                         size == m->objects[i].bytes && !strcmp(hex, m->objects[i].sha256);
        paths[i] = malloc((here ? strlen(lp) : strlen(tmp)) + 32);
        if (!paths[i]) {
            st = xffl_fail(XFFL_ERR_NOMEM, "loading %s", commit_key);
            goto done;
        }
        if (here) {
            strcpy(paths[i], lp);
            continue;
        }
        sprintf(paths[i], "%s/part-%03d.h5", tmp, i);
        tr[n_get++] = (store_transfer){.key = m->objects[i].name, .path = paths[i], .sha256_hex = m->objects[i].sha256};
        c->fetched_bytes += m->objects[i].bytes;
    }
    st = n_get ? store_get_many(s, tr, n_get) : XFFL_OK;
    if (st != XFFL_OK) {
        *bad = st == XFFL_ERR_CORRUPT || st == XFFL_ERR_NOT_FOUND;
        st = xffl_wrap(st, "%s", commit_key);
        goto done;
    }
    /* parsed in a child first: a part that crashes libhdf5 is a bad delta, not a dead
     * aggregator (docs/design.md "HDF5 files") */
    for (int i = 0; i < m->n_objects; i++)
        if ((st = ckpt_h5_probe_isolated(paths[i], (uint64_t)t->total * sizeof(float))) != XFFL_OK) {
            *bad = is_data_error(st);
            st = xffl_wrap(st, "%s", m->objects[i].name);
            goto done;
        }
    ckpt_delta_meta ex = {.round = round, .base_version = base->version, .base_index = base->index_key,
                          .facility = c->facility};
    pipe_federation_delta_codec(f, round, &ex);
    st = ckpt_delta_read((const char *const *)paths, m->n_objects, t, m, &ex, NULL, c->delta);
    if (st != XFFL_OK) {
        *bad = is_data_error(st);
        st = xffl_wrap(st, "%s", commit_key);
    }
done:
    if (paths)
        for (int i = 0; i < m->n_objects; i++) free(paths[i]);
    free(paths);
    free(tr);
    if (tmp) {
        xffl_rmtree_cleanup(tmp);
        free(tmp);
    }
    ckpt_manifest_free(m);
    if (st != XFFL_OK) {
        float *d = c->delta;
        c->delta = NULL;
        free(d);
    }
    return st;
}

xffl_status pipe_contrib_usable(store *s, const pipe_federation *f, const char *fed_sha, int64_t round,
                                const pipe_version_ref *base, const char *commit_key, int *usable)
{
    *usable = 0;
    ckpt_manifest *m = NULL;
    pipe_contrib c;
    memset(&c, 0, sizeof c);
    xffl_status st = load_commit(s, f, commit_key, &m, NULL);
    if (st == XFFL_OK) st = check_commit(m, f, fed_sha, round, base, commit_key, &c);
    for (int i = 0; st == XFFL_OK && i < m->n_objects; i++) {
        uint64_t size = 0;
        st = store_head(s, m->objects[i].name, &size, NULL);
        if (st == XFFL_OK && size != m->objects[i].bytes)
            st = xffl_fail(XFFL_ERR_CORRUPT, "%s names %s of %llu bytes, found %llu", commit_key, m->objects[i].name,
                           (unsigned long long)m->objects[i].bytes, (unsigned long long)size);
    }
    ckpt_manifest_free(m);
    if (st == XFFL_OK) *usable = 1;
    else if (is_data_error(st)) {
        xffl_log(XFFL_LOG_WARN, "warning: %s is not an attempt aggregate could accept: %s", commit_key, xffl_errmsg());
        st = XFFL_OK;
    }
    return st;
}

xffl_status pipe_contrib_bytes(store *s, const pipe_federation *f, const char *commit_key, const char *local_dir,
                               uint64_t *parts, uint64_t *manifest)
{
    ckpt_manifest *m = NULL;
    *parts = *manifest = 0;
    XFFL_FORWARD(load_commit(s, f, commit_key, &m, manifest));
    for (int i = 0; i < m->n_objects; i++) {
        char lp[4200];
        struct stat sb;
        if (local_dir) local_path(local_dir, m->objects[i].name, lp, sizeof lp);
        if (!local_dir || stat(lp, &sb) != 0 || (uint64_t)sb.st_size != m->objects[i].bytes) *parts += m->objects[i].bytes;
    }
    ckpt_manifest_free(m);
    return XFFL_OK;
}

xffl_status pipe_combine(const pipe_federation *f, int64_t round, int n, const pipe_contrib *contribs, const float *base,
                         float *const *state, int64_t n_floats, int threads, float *out, pipe_algo_stats *stats)
{
    const float **deltas = calloc((size_t)n, sizeof *deltas);
    double *tok = calloc((size_t)n, sizeof *tok);
    xffl_status st = deltas && tok ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "aggregation inputs");
    for (int i = 0; st == XFFL_OK && i < n; i++) {
        deltas[i] = contribs[i].delta;
        tok[i] = (double)contribs[i].tokens;
    }
    pipe_algo_input in = {.k = n, .deltas = deltas, .tokens = tok, .base = base, .n = n_floats,
                          .state = (float **)state, .round = round, .threads = threads};
    if (st == XFFL_OK) st = pipe_algo_apply(&f->algo, &in, out, stats);
    free(deltas);
    free(tok);
    return st;
}

typedef struct {
    const float *const *slabs;
    const ckpt_param_table *t;
} slab_src;

static XFFL_MUST_USE xffl_status from_slabs(void *ctx, int group, int index, float *out)
{
    slab_src *s = ctx;
    const ckpt_param *p = &s->t->params[index];
    memcpy(out, s->slabs[group] + p->offset, (size_t)p->numel * sizeof(float));
    return XFFL_OK;
}

xffl_status pipe_combine_publish(store *from, store *to, const pipe_publish_setting *ps,
                                 const pipe_version_ref *base, int n, const pipe_contrib *contribs,
                                 pipe_publish_result *res)
{
    memset(res, 0, sizeof *res);
    const pipe_federation *f = ps->f;
    const ckpt_param_table *t = ps->t;
    const pipe_algo_config *ac = &f->algo;
    int ns = pipe_algo_state_count(ac->kind);
    ckpt_manifest *index = NULL;
    XFFL_FORWARD(pipe_manifest_load(from, base->index_key, base->index_sha, &index, NULL));
    int64_t tokens_seen = 0;
    /* checked >= 0 by pipe_manifest_load; each delta's tokens come from federation.h5 */
    xffl_status st = ckpt_manifest_require_int(index, base->index_key, "tokens_seen", &tokens_seen);
    const char *groups[PIPE_MAX_GROUPS] = {"model"};
    /* slabs[0] the model, slabs[1..ns] the outer state's groups, one block (*state) */
    float *slabs[PIPE_MAX_GROUPS] = {0}, *out = NULL, *state[PIPE_MAX_GROUPS] = {0}, *outer = NULL;
    if (st != XFFL_OK) goto done;
    slabs[0] = xffl_alloc_big((size_t)t->total * sizeof(float));
    if (ns > 0) outer = xffl_alloc_big((size_t)ns * (size_t)t->total * sizeof(float));
    out = xffl_alloc_big((size_t)t->total * sizeof(float));
    if (!slabs[0] || (ns > 0 && !outer) || !out) {
        st = xffl_fail(XFFL_ERR_NOMEM, "aggregation slabs (%lld floats)", (long long)t->total);
        goto done;
    }
    for (int g = 1; g <= ns; g++) {
        groups[g] = pipe_algo_state_group(ac->kind, g - 1);
        state[g - 1] = slabs[g] = outer + (size_t)(g - 1) * (size_t)t->total;
    }
    /* the base's outer state, if it has the algorithm's (version 0 has none: zeros) */
    const pipe_download_options dopt = {.f = f, .fed_sha = ps->fed_sha, .state_dir = ps->state_dir,
                                        .threads = ps->threads};
    XFFL_CHECK_GOTO(st, pipe_model_download(from, base, &dopt, t, slabs[0], outer, &res->base), done);
    if (ns > 0 && !res->base.state_known) { /* an update carries the model only */
        const pipe_download_options full = {.f = f, .fed_sha = ps->fed_sha, .threads = ps->threads};
        uint64_t before = res->base.bytes;
        XFFL_CHECK_GOTO(st, pipe_model_download(from, base, &full, t, slabs[0], outer, &res->base), done);
        res->base.bytes += before;
    }
    for (int i = 0; i < n; i++)
        if (__builtin_add_overflow(tokens_seen, contribs[i].tokens, &tokens_seen)) {
            st = xffl_fail(XFFL_ERR_INVALID, "round %lld: tokens_seen overflows", (long long)base->version + 1);
            goto done;
        }
    pipe_algo_stats stt;
    XFFL_CHECK_GOTO(st, pipe_combine(f, base->version + 1, n, contribs, slabs[0], state, t->total, ps->threads, out,
                                     &stt),
                    done);
    if (ac->delta_filter > 0) {
        char line[1024];
        size_t o = 0;
        line[0] = 0;
        for (int i = 0; i < n && i < PIPE_ALGO_MAX_K && o < sizeof line; i++) {
            int w = snprintf(line + o, sizeof line - o, "%s%s %s (distance %.3g x median, cosine %.3f)", i ? ", " : "",
                             contribs[i].facility, stt.filter_dropped[i] ? "left out" : "kept",
                             stt.filter_distance[i], stt.filter_cosine[i]);
            if (w < 0) break;
            o += (size_t)w;
        }
        xffl_log(stt.deltas_dropped ? XFFL_LOG_WARN : XFFL_LOG_INFO, "round %lld: delta filter %g: %s",
                 (long long)base->version + 1, ac->delta_filter, line);
    }
    if (stt.deltas_clipped)
        xffl_log(XFFL_LOG_INFO, "round %lld: %d of %d deltas clipped to %g x the median delta norm",
                 (long long)base->version + 1, stt.deltas_clipped, n, ac->delta_clip);
    res->stats = stt;
    /* the base's model stays for the update from it (pipelines/update.h) */
    float *base_model = slabs[0];
    slabs[0] = out;
    out = base_model;
    const char *facs[PIPE_MAX_FACILITIES], *keys[PIPE_MAX_FACILITIES];
    for (int i = 0; i < n && i < PIPE_MAX_FACILITIES; i++) {
        facs[i] = contribs[i].facility;
        keys[i] = contribs[i].commit_key;
    }
    char v_pg[40], v_up[40], v_clip[40];
    snprintf(v_pg, sizeof v_pg, "%.17g", stt.pg_norm);
    snprintf(v_up, sizeof v_up, "%.17g", stt.update_norm);
    snprintf(v_clip, sizeof v_clip, "%.17g", stt.clip_scale);
    const char *ek[] = {"pseudo_gradient_norm", "update_norm", "clip_scale"};
    const char *ev[] = {v_pg, v_up, v_clip};
    pipe_version_spec spec = {
        .version = base->version + 1, .parent = base->version, .round = base->version + 1,
        .algorithm = pipe_algo_name(ac->kind), .federation_sha256 = ps->fed_sha,
        .tokens_seen = tokens_seen, .n_contributors = n, .contributor_facility = facs,
        .contributor_commit = keys, .n_groups = 1 + ns, .groups = groups, .part_size = f->part_size,
        .level = f->zstd_level, .threads = ps->threads, .n_extra = 3, .extra_keys = ek, .extra_values = ev,
        .signer = ps->signer, .update_from = ps->with_update ? base : NULL,
        .update_base = ps->with_update ? base_model : NULL};
    slab_src src = {.slabs = (const float *const *)slabs, .t = t};
    XFFL_CHECK_GOTO(st, pipe_version_publish(to, t, &spec, from_slabs, &src, &res->version), done);
    /* after LATEST: a job killed before this leaves the cache of base, and the next job
     * replays or downloads the version in full. The version is out, so a cache that
     * cannot be written costs the next job a download, not this job its success. */
    if (ps->state_dir && pipe_base_save(ps->state_dir, &res->version.ref, t, slabs[0], outer, ns) != XFFL_OK)
        xffl_log(XFFL_LOG_WARN, "warning: %s; the next aggregation downloads v%06lld", xffl_errmsg(),
                 (long long)res->version.ref.version);
done:
    xffl_free_big(slabs[0]);
    xffl_free_big(outer);
    xffl_free_big(out);
    ckpt_manifest_free(index);
    return st;
}

static XFFL_MUST_USE xffl_status pipe_aggregate_signed(store *s, const pipe_aggregate_options *o,
                                                       const pipe_federation *fp, const char *fed_sha,
                                                       const pipe_version_ref *basep, const xffl_signer *signer,
                                                       pipe_aggregate_result *res, double t0);

xffl_status pipe_aggregate(store *s, const pipe_aggregate_options *o, pipe_aggregate_result *res)
{
    memset(res, 0, sizeof *res);
    double t0 = xffl_now();
    if (o->state_dir) XFFL_FORWARD(xffl_mkdirs(o->state_dir));
    pipe_federation f;
    char fed_sha[XFFL_SHA256_HEX];
    pipe_version_ref base;
    XFFL_FORWARD(pipe_federation_load_latest(s, &base, &f, fed_sha));
    XFFL_FORWARD(pipe_trust_pin(s, o->trust, fed_sha));
    XFFL_FORWARD(pipe_trust_check_index(s, &f, &base, NULL));
    xffl_signer *signer = NULL;
    XFFL_FORWARD(pipe_trust_signer(o->trust, &f, PIPE_AGGREGATOR_KEY_NAME, &signer));
    xffl_status st = pipe_aggregate_signed(s, o, &f, fed_sha, &base, signer, res, t0);
    xffl_signer_free(signer);
    return st;
}

xffl_status pipe_aggregate_rounds(store *s, const pipe_aggregate_options *o, int n,
                                  void (*on_round)(void *ctx, const pipe_aggregate_result *r), void *ctx)
{
    pipe_aggregate_options one = *o;
    xffl_big_keep(n > 1);
    xffl_status st = XFFL_OK;
    for (int k = 0; k < n && st == XFFL_OK; k++) {
        pipe_aggregate_result r;
        if ((st = pipe_aggregate(s, &one, &r)) != XFFL_OK) break;
        if (on_round) on_round(ctx, &r);
        if (one.round > 0) one.round = r.version + 1;
    }
    xffl_big_keep(0);
    return st;
}

/* pipe_aggregate once federation.h5, its pin, LATEST's INDEX and the key are checked. */
static XFFL_MUST_USE xffl_status pipe_aggregate_signed(store *s, const pipe_aggregate_options *o, const pipe_federation *fp,
                                         const char *fed_sha, const pipe_version_ref *basep,
                                         const xffl_signer *signer, pipe_aggregate_result *res, double t0)
{
    pipe_federation f = *fp;
    pipe_version_ref base = *basep;
    int64_t round = base.version + 1;
    if (o->round >= 0) {
        if (o->round <= base.version) {
            res->already = 1;
            res->version = o->round;
            return XFFL_OK;
        }
        XFFL_RETURN_IF(o->round > round, XFFL_ERR_NOT_YET,
                       "round %lld needs version %lld first; LATEST is v%06lld", (long long)o->round,
                       (long long)o->round - 1, (long long)base.version);
    }
    int quorum = o->quorum > 0 ? o->quorum : f.quorum;
    XFFL_RETURN_IF(quorum > f.n_facilities, XFFL_ERR_USAGE, "quorum %d exceeds the %d facilities of the federation",
                   quorum, f.n_facilities);
    ckpt_param_table *t = NULL;
    XFFL_FORWARD(ckpt_param_table_create(&f.model, &t));
    pipe_contrib got[PIPE_MAX_FACILITIES];
    memset(got, 0, sizeof got);
    int have = 0;
    xffl_status st = XFFL_OK;
    double poll = o->poll > 0 ? o->poll : 2.0;
    for (;;) {
        pipe_round_listing l;
        XFFL_CHECK_GOTO(st, pipe_round_list_signed(s, round, NULL, f.aggregator_key, &l), done);
        for (int fi = 0; fi < f.n_facilities + 1 && st == XFFL_OK; fi++) {
            /* every facility folder present, known or not: unknown ones get rejected */
            for (int i = 0; i < l.count; i++) {
                pipe_attempt *a = &l.items[i];
                int known = pipe_federation_facility_index(&f, a->facility);
                if (fi < f.n_facilities ? known != fi : known >= 0) continue;
                if (a->state != PIPE_ATTEMPT_PENDING) continue;
                int slot = known >= 0 ? known : -1;
                if (slot >= 0 && got[slot].delta) continue; /* already have this facility's */
                pipe_contrib c;
                int bad = 0;
                xffl_status cs = pipe_contrib_load(s, &f, fed_sha, t, round, &base, a->commit_key, &c, &bad);
                if (cs == XFFL_OK && slot >= 0) {
                    got[slot] = c;
                    have++;
                    xffl_log(XFFL_LOG_INFO, "accepted %s (%s)", a->facility, a->commit_key);
                } else if (cs == XFFL_OK || bad) {
                    char rk[PIPE_KEY_MAX], reason[XFFL_ERRMSG_MAX];
                    snprintf(reason, sizeof reason, "%s", cs == XFFL_OK ? "facility not in the federation" : xffl_errmsg());
                    pipe_contrib_clear(&c);
                    xffl_status rs = pipe_reject_signed(s, a->commit_key, reason, signer, rk);
                    if (rs != XFFL_OK) {
                        st = rs;
                        break;
                    }
                    res->n_rejected++;
                    xffl_log(XFFL_LOG_INFO, "rejected %s: %s", a->commit_key, reason);
                } else {
                    st = cs;
                    break;
                }
            }
        }
        pipe_round_listing_free(&l);
        if (st != XFFL_OK) goto done;
        if (have >= quorum) {
            res->wait_seconds = xffl_now() - t0;
            break;
        }
        /* someone else may have published this round meanwhile */
        pipe_version_ref now;
        XFFL_CHECK_GOTO(st, pipe_latest_read(s, &now), done);
        if (now.version >= round) {
            res->already = 1;
            res->version = round;
            goto done;
        }
        if (xffl_now() - t0 >= o->deadline) {
            st = xffl_fail(XFFL_ERR_NOT_YET, "round %lld has %d of %d valid deltas (quorum not reached)",
                           (long long)round, have, quorum);
            goto done;
        }
        xffl_sleep(poll);
    }
    {
        pipe_contrib use[PIPE_MAX_FACILITIES];
        int n = 0;
        for (int i = 0; i < f.n_facilities; i++)
            if (got[i].delta) {
                use[n] = got[i];
                memcpy(res->used[n], got[i].facility, sizeof res->used[n]);
                res->tokens += got[i].tokens;
                n++;
            }
        res->n_used = n;
        xffl_log(XFFL_LOG_INFO, "round %lld: combining the deltas with %s", (long long)round,
                 pipe_algo_name(f.algo.kind));
        const pipe_publish_setting ps = {.f = &f, .fed_sha = fed_sha, .t = t, .threads = o->threads,
                                         .signer = signer, .with_update = !o->no_update,
                                         .state_dir = o->state_dir};
        pipe_publish_result pr;
        XFFL_CHECK_GOTO(st, pipe_combine_publish(s, s, &ps, &base, n, use, &pr), done);
        res->version = pr.version.ref.version;
        res->latest_written = pr.version.latest_written;
        res->stored_bytes = pr.version.stored_bytes;
        res->stats = pr.stats;
        res->base_route = pr.base.route;
        res->base_bytes = pr.base.bytes;
    }
done:
    for (int i = 0; i < PIPE_MAX_FACILITIES; i++) pipe_contrib_clear(&got[i]);
    ckpt_param_table_free(t);
    res->seconds = xffl_now() - t0;
    return st;
}
