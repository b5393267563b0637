/* Version updates: write (aggregation), apply (train), verify (verify --all), and the
 * facility's cached base. See update.h. */
#include "pipelines/update.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/util.h"
#include "libckpt/h5part.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"

enum { BATCH = 4 };

static int64_t max_numel(const ckpt_param_table *t)
{
    int64_t m = 0;
    for (int i = 0; i < t->count; i++)
        if (t->params[i].numel > m) m = t->params[i].numel;
    return m;
}

enum { SAMPLE_ELEMS = 1 << 18, SAMPLES = 8 };

/* Shuffled and compressed size of up to SAMPLES chunks of SAMPLE_ELEMS words, evenly
 * spaced over x (the whole of a smaller tensor): what the part writer would store. */
static XFFL_MUST_USE xffl_status sampled_size(const uint32_t *x, int64_t n, int level, unsigned char *shuf,
                                              unsigned char *z, size_t zcap, uint64_t *out)
{
    *out = 0;
    const int64_t chunks = (n + SAMPLE_ELEMS - 1) / SAMPLE_ELEMS;
    const int64_t take = chunks < SAMPLES ? chunks : SAMPLES;
    for (int64_t k = 0; k < take; k++) {
        const int64_t c = k * chunks / take, at = c * SAMPLE_ELEMS;
        const size_t m = (size_t)(n - at < SAMPLE_ELEMS ? n - at : SAMPLE_ELEMS) * 4;
        size_t got = 0;
        ckpt_shuffle(x + at, shuf, m, 4);
        XFFL_FORWARD(ckpt_zstd_compress(shuf, m, z, zcap, level, &got));
        *out += got;
    }
    return XFFL_OK;
}

/* Writes part p of the plan: per tensor, /xor/<tensor> = bits(v) ^ bits(v−1), or
 * /model/<tensor> = v's floats where those would be stored smaller (a tensor that
 * moved far: its exponents changed, and the XOR is noise in every byte plane). The
 * choice is made on sampled chunks (sampled_size) and is a function of the two
 * versions only, so the same versions give the same part. */
static XFFL_MUST_USE xffl_status write_tensor(ckpt_h5_writer *w, const ckpt_param *pr, const float *base, float *buf,
                                              uint32_t *x, int level, unsigned char *shuf, unsigned char *z,
                                              size_t zcap, int *as_xor)
{
    const uint32_t *v = (const uint32_t *)buf, *b = (const uint32_t *)base;
    for (int64_t k = 0; k < pr->numel; k++) x[k] = v[k] ^ b[k];
    uint64_t sx = 0, sv = 0;
    XFFL_FORWARD(sampled_size(x, pr->numel, level, shuf, z, zcap, &sx));
    XFFL_FORWARD(sampled_size(v, pr->numel, level, shuf, z, zcap, &sv));
    char name[CKPT_NAME_MAX + 16];
    *as_xor = sx <= sv;
    snprintf(name, sizeof name, "%s/%s", *as_xor ? "xor" : "model", pr->name);
    return ckpt_h5_write(w, name, *as_xor ? CKPT_DT_U32 : CKPT_DT_F32, pr->ndim, pr->shape, *as_xor ? (void *)x : buf,
                         NULL, NULL);
}

/* Writes part p of the plan (write_tensor for each of its tensors). */
static XFFL_MUST_USE xffl_status write_part(const ckpt_param_table *t, const pipe_update_spec *sp,
                                            const pipe_part_plan *plan, int p, const char *path, float *buf,
                                            uint32_t *x, unsigned char *shuf, unsigned char *z, size_t zcap,
                                            int *n_xor)
{
    ckpt_h5_options opt = {.level = sp->level, .threads = sp->threads};
    ckpt_h5_writer *w;
    XFFL_FORWARD(ckpt_h5_writer_create(path, &opt, &w));
    xffl_status s = XFFL_OK;
#define W(expr) if (s == XFFL_OK) s = (expr)
    W(ckpt_h5_attr_str(w, "format", PIPE_UPDATE_PART_FORMAT));
    W(ckpt_h5_attr_int(w, "format_version", PIPE_UPDATE_PART_FORMAT_VERSION));
    W(ckpt_h5_attr_int(w, "version", sp->target->version));
    W(ckpt_h5_attr_int(w, "base_version", sp->base->version));
    W(ckpt_h5_attr_str(w, "index", sp->target->index_key));
    W(ckpt_h5_attr_str(w, "base_index", sp->base->index_key));
    W(ckpt_h5_attr_str(w, "encoding", "xor"));
    W(ckpt_h5_attr_int(w, "part", p));
    W(ckpt_h5_attr_int(w, "parts", plan->n_parts));
    W(ckpt_h5_attr_int(w, "first_tensor", plan->first[p]));
    W(ckpt_h5_attr_int(w, "n_tensors", plan->count[p]));
    W(pipe_model_attrs_write(w, &t->cfg));
#undef W
    const int level = sp->level ? sp->level : CKPT_ZSTD_DEFAULT_LEVEL;
    for (int i = plan->first[p]; i < plan->first[p] + plan->count[p] && s == XFFL_OK; i++) {
        const ckpt_param *pr = &t->params[i];
        s = sp->fn(sp->ctx, 0, i, buf);
        if (s != XFFL_OK) {
            xffl_wrap(s, "update tensor %s", pr->name);
            break;
        }
        int as_xor = 0;
        s = write_tensor(w, pr, sp->base_model + pr->offset, buf, x, level, shuf, z, zcap, &as_xor);
        *n_xor += as_xor;
    }
    if (s != XFFL_OK) {
        ckpt_h5_writer_abort(w);
        return s;
    }
    return ckpt_h5_writer_close(w);
}

xffl_status pipe_update_publish(store *s, const ckpt_param_table *t, const pipe_update_spec *sp, pipe_update_result *res)
{
    XFFL_RETURN_IF(sp->base->version != sp->target->version - 1, XFFL_ERR_INTERNAL, "update from v%06" PRId64 " to v%06" PRId64,
                   sp->base->version, sp->target->version);
    pipe_part_plan plan;
    XFFL_FORWARD(pipe_version_plan(t, 1, sp->part_size, &plan));
    const int64_t maxn = max_numel(t);
    float *buf = malloc((size_t)maxn * sizeof *buf);
    uint32_t *x = malloc((size_t)maxn * sizeof *x);
    const size_t zcap = ckpt_zstd_bound((size_t)SAMPLE_ELEMS * 4);
    unsigned char *shuf = malloc((size_t)SAMPLE_ELEMS * 4), *z = malloc(zcap);
    int n_xor = 0;
    char(*paths)[4096] = calloc(BATCH, sizeof *paths);
    char(*keys)[PIPE_KEY_MAX] = calloc(BATCH, sizeof *keys);
    char *dir = NULL, prefix[40], stem[48];
    ckpt_manifest *m = NULL;
    uint64_t stored = 0;
    xffl_status st = XFFL_OK;
    pipe_version_prefix(sp->target->version, prefix, sizeof prefix);
    pipe_update_stem(sp->base->version, stem, sizeof stem);
    if (!buf || !x || !shuf || !z || !paths || !keys) {
        st = xffl_fail(XFFL_ERR_NOMEM, "update buffers (%lld floats)", (long long)maxn);
        goto done;
    }
    XFFL_CHECK_GOTO(st, ckpt_manifest_create(&m), done);
#define H(expr) if (st == XFFL_OK) st = (expr)
    H(ckpt_manifest_set(m, "format", PIPE_UPDATE_FORMAT));
    H(ckpt_manifest_set_int(m, "format_version", PIPE_UPDATE_FORMAT_VERSION));
    H(ckpt_manifest_set_int(m, "version", sp->target->version));
    H(ckpt_manifest_set_int(m, "base_version", sp->base->version));
    H(ckpt_manifest_set(m, "index", sp->target->index_key));
    H(ckpt_manifest_set(m, "base_index", sp->base->index_key));
    H(ckpt_manifest_set(m, "federation", sp->federation_sha256));
    H(ckpt_manifest_set(m, "groups", "model"));
    H(ckpt_manifest_set(m, "encoding", "xor"));
    H(ckpt_manifest_set_int(m, "parts", plan.n_parts));
#undef H
    XFFL_CHECK_GOTO(st, st, done);
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("update", &dir), done);
    for (int b0 = 0; b0 < plan.n_parts; b0 += BATCH) {
        int nb = plan.n_parts - b0 < BATCH ? plan.n_parts - b0 : BATCH;
        store_transfer tr[BATCH];
        char shas[BATCH][XFFL_SHA256_HEX];
        for (int k = 0; k < nb; k++) {
            int p = b0 + k;
            char *sha = shas[k];
            uint64_t size;
            snprintf(paths[k], sizeof paths[k], "%s/update-%03d.h5", dir, p);
            XFFL_CHECK_GOTO(st, write_part(t, sp, &plan, p, paths[k], buf, x, shuf, z, zcap, &n_xor), done);
            XFFL_CHECK_GOTO(st, xffl_sha256_file(paths[k], sha, &size), done);
            XFFL_CHECK_GOTO(st, pipe_update_part_key(prefix, p, sha, keys[k], sizeof keys[k]), done);
            XFFL_CHECK_GOTO(st, ckpt_manifest_add_object(m, keys[k], size, sha), done);
            tr[k] = (store_transfer){.key = keys[k], .path = paths[k], .sha256_hex = sha};
            stored += size;
        }
        XFFL_CHECK_GOTO(st, store_put_many(s, tr, (size_t)nb), done);
        for (int k = 0; k < nb; k++) unlink(paths[k]);
    }
    char key[PIPE_KEY_MAX];
    XFFL_CHECK_GOTO(st, pipe_manifest_put_signed(s, m, prefix, stem, sp->signer, key), done);
    if (res) {
        snprintf(res->key, sizeof res->key, "%s", key);
        res->n_parts = plan.n_parts;
        res->stored_bytes = stored;
        res->n_xor = n_xor;
        res->n_tensors = t->count;
    }
done:
    if (st != XFFL_OK)
        xffl_wrap(st, "update of version %lld from %lld", (long long)sp->target->version, (long long)sp->base->version);
    if (dir) xffl_rmtree_cleanup(dir);
    free(dir);
    free(buf);
    free(x);
    free(shuf);
    free(z);
    free(paths);
    free(keys);
    ckpt_manifest_free(m);
    pipe_part_plan_free(&plan);
    return st;
}

xffl_status pipe_update_list(store *s, int64_t version, store_listing *l)
{
    char prefix[40], stem[48];
    pipe_version_prefix(version, prefix, sizeof prefix);
    pipe_update_stem(version - 1, stem, sizeof stem);
    XFFL_FORWARD(store_list(s, prefix, l));
    size_t n = 0, sl = strlen(stem);
    for (size_t i = 0; i < l->count; i++) {
        pipe_key k;
        if (pipe_key_parse(l->items[i].key, &k) == PIPE_KEY_VERSION && k.obj == PIPE_OBJ_UPDATE &&
            !strncmp(k.name, stem, sl) && k.name[sl] == '-') {
            store_entry e = l->items[n];
            l->items[n++] = l->items[i];
            l->items[i] = e;
        }
    }
    for (size_t i = n; i < l->count; i++) free(l->items[i].key);
    l->count = n;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status attr_is(ckpt_h5_reader *r, const char *name, int64_t want)
{
    int64_t v;
    xffl_status st = ckpt_h5_get_attr_int(r, name, &v);
    XFFL_FORWARD(st == XFFL_ERR_NOT_FOUND ? XFFL_ERR_INVALID : st);
    XFFL_RETURN_IF(v != want, XFFL_ERR_INVALID, "%s: %s %lld, expected %lld", ckpt_h5_reader_path(r), name, (long long)v,
                   (long long)want);
    return XFFL_OK;
}

/* One fetched update part: its attributes, then each tensor's words XORed into model
 * (when model) and the result checked against the target INDEX's tensor line. */
static XFFL_MUST_USE xffl_status apply_part(const char *path, const ckpt_manifest *upd, int part, const ckpt_manifest *idx,
                                            const char *index_key, const ckpt_param_table *t, float *model,
                                            uint32_t *tmp, char *seen)
{
    ckpt_h5_reader *r = NULL;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    int64_t version = 0, base = 0, parts = 0, first = 0, count = 0;
    ckpt_model_config cfg;
    xffl_status st = ckpt_h5_check_format(r, PIPE_UPDATE_PART_FORMAT, PIPE_UPDATE_PART_FORMAT_VERSION);
    if (st == XFFL_OK) st = ckpt_manifest_require_int(upd, "UPDATE", "version", &version);
    if (st == XFFL_OK) st = ckpt_manifest_require_int(upd, "UPDATE", "base_version", &base);
    if (st == XFFL_OK) st = ckpt_manifest_require_int(upd, "UPDATE", "parts", &parts);
    if (st == XFFL_OK) st = attr_is(r, "version", version);
    if (st == XFFL_OK) st = attr_is(r, "base_version", base);
    if (st == XFFL_OK) st = attr_is(r, "part", part);
    if (st == XFFL_OK) st = attr_is(r, "parts", parts);
    if (st == XFFL_OK) st = pipe_model_attrs_read(r, &cfg);
    if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
    if (st == XFFL_OK && (cfg.dim != t->cfg.dim || cfg.n_layers != t->cfg.n_layers || cfg.vocab_size != t->cfg.vocab_size ||
                          cfg.hidden_dim != t->cfg.hidden_dim || cfg.n_heads != t->cfg.n_heads ||
                          cfg.n_kv_heads != t->cfg.n_kv_heads || cfg.max_seq_len != t->cfg.max_seq_len))
        st = xffl_fail(XFFL_ERR_INVALID, "%s: model config differs from the federation's", path);
    if (st == XFFL_OK) st = ckpt_h5_get_attr_int(r, "first_tensor", &first);
    if (st == XFFL_OK) st = ckpt_h5_get_attr_int(r, "n_tensors", &count);
    if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
    if (st == XFFL_OK && (first < 0 || count < 1 || first + count > t->count))
        st = xffl_fail(XFFL_ERR_INVALID, "%s: tensors %lld..%lld outside the table of %d", path, (long long)first,
                       (long long)(first + count - 1), t->count);
    int64_t done = first; /* tensors [first, done) applied */
    for (int64_t i = first; st == XFFL_OK && i < first + count; i++) {
        const ckpt_param *p = &t->params[i];
        char name[CKPT_NAME_MAX + 16], tname[CKPT_NAME_MAX + 16];
        snprintf(name, sizeof name, "xor/%s", p->name);
        snprintf(tname, sizeof tname, "model/%s", p->name);
        if (seen[i]++) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s is in two update parts", path, p->name);
            break;
        }
        /* the XOR words, or (a tensor that moved far) v's floats themselves; not both */
        const int as_xor = ckpt_h5_has_dataset(r, name), as_model = ckpt_h5_has_dataset(r, tname);
        if (as_xor == as_model) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s needs exactly one of /%s and /%s", path, p->name, name, tname);
            break;
        }
        st = ckpt_h5_read(r, as_xor ? name : tname, as_xor ? CKPT_DT_U32 : CKPT_DT_F32, p->ndim, p->shape, tmp, 0, NULL);
        if (st == XFFL_ERR_NOT_FOUND) st = XFFL_ERR_INVALID;
        if (st != XFFL_OK || !model) continue;
        uint32_t *m = (uint32_t *)(model + p->offset);
        if (as_xor)
            for (int64_t k = 0; k < p->numel; k++) m[k] ^= tmp[k];
        else
            memcpy(m, tmp, (size_t)p->numel * 4);
        done = i + 1;
    }
    ckpt_h5_reader_close(r);
    /* the applied tensors against the INDEX, hashed in parallel (HDF5 reads one at a
     * time); the first mismatch in table order is named before a later read's failure */
    if (!model || done == first) return st;
    const int64_t n = done - first;
    char(*got)[XFFL_SHA256_HEX] = malloc((size_t)n * sizeof *got);
    XFFL_RETURN_IF(!got, XFFL_ERR_NOMEM, "%s: checks of %lld tensors", path, (long long)n);
#pragma omp parallel for schedule(dynamic)
    for (int64_t k = 0; k < n; k++) {
        const ckpt_param *p = &t->params[first + k];
        xffl_sha256_hex(model + p->offset, (size_t)p->numel * 4, got[k]);
    }
    xffl_status bad = XFFL_OK;
    for (int64_t k = 0; k < n && bad == XFFL_OK; k++) {
        char tname[CKPT_NAME_MAX + 16];
        snprintf(tname, sizeof tname, "model/%s", t->params[first + k].name);
        int ti = ckpt_manifest_find_tensor(idx, tname);
        if (ti < 0) bad = xffl_fail(XFFL_ERR_INVALID, "tensor %s is not listed in %s", tname, index_key);
        else if (strcmp(idx->tensors[ti].sha256, got[k]) != 0)
            bad = xffl_fail(XFFL_ERR_CORRUPT, "tensor %s after the update: digest %.12s differs from %s (%.12s)", tname,
                            got[k], index_key, idx->tensors[ti].sha256);
    }
    free(got);
    return bad != XFFL_OK ? bad : st;
}

/* Fetches upd's parts a few at a time and applies them (model NULL: checks them). */
static XFFL_MUST_USE xffl_status apply_update(store *s, const char *upd_key, const ckpt_manifest *upd,
                                              const ckpt_manifest *idx, const char *index_key,
                                              const ckpt_param_table *t, float *model, uint64_t *bytes)
{
    const int64_t maxn = max_numel(t);
    uint32_t *tmp = xffl_alloc_big((size_t)maxn * 4);
    char *seen = calloc((size_t)t->count, 1), *dir = NULL;
    xffl_status st = XFFL_OK;
    if (!tmp || !seen) {
        st = xffl_fail(XFFL_ERR_NOMEM, "update buffers");
        goto done;
    }
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("update", &dir), done);
    for (int b0 = 0; b0 < upd->n_objects && st == XFFL_OK; b0 += BATCH) {
        int nb = upd->n_objects - b0 < BATCH ? upd->n_objects - b0 : BATCH;
        store_transfer tr[BATCH];
        char paths[BATCH][4096];
        for (int k = 0; k < nb; k++) {
            snprintf(paths[k], sizeof paths[k], "%s/update-%d.h5", dir, b0 + k);
            tr[k] = (store_transfer){.key = upd->objects[b0 + k].name, .path = paths[k],
                                     .sha256_hex = upd->objects[b0 + k].sha256};
            *bytes += upd->objects[b0 + k].bytes;
        }
        XFFL_CHECK_GOTO(st, store_get_many(s, tr, (size_t)nb), done);
        for (int k = 0; k < nb && st == XFFL_OK; k++) {
            /* parsed in a child first, as every part another party could have written
             * (an unsigned federation's UPDATE is anyone's): docs/design.md "HDF5 files" */
            st = ckpt_h5_probe_isolated(paths[k], (uint64_t)maxn * 4);
            if (st == XFFL_OK) st = apply_part(paths[k], upd, b0 + k, idx, index_key, t, model, tmp, seen);
            unlink(paths[k]);
            if (st != XFFL_OK) {
                char msg[XFFL_ERRMSG_MAX];
                snprintf(msg, sizeof msg, "%s", xffl_errmsg());
                const char *tail = strstr(msg, ".h5: ");
                xffl_fail(st, "%s (of %s): %s", upd->objects[b0 + k].name, upd_key, tail ? tail + 5 : msg);
            }
        }
    }
    for (int i = 0; st == XFFL_OK && i < t->count; i++)
        if (!seen[i]) st = xffl_fail(XFFL_ERR_INVALID, "%s: no part holds tensor %s", upd_key, t->params[i].name);
done:
    if (dir) xffl_rmtree_cleanup(dir);
    free(dir);
    xffl_free_big(tmp);
    free(seen);
    return st;
}

/* The update of target from base_index in target's folder, loaded (and its signature
 * checked); NOT_FOUND when there is none. One that does not load (damaged, not the
 * aggregator's) is passed over; when no other matches, its error is the answer. */
static XFFL_MUST_USE xffl_status find_update(store *s, const pipe_version_ref *target, const char *base_index,
                                             const char *aggregator_key, char *key, ckpt_manifest **out, uint64_t *bytes)
{
    store_listing l = {0};
    XFFL_FORWARD(pipe_update_list(s, target->version, &l));
    xffl_status st = XFFL_OK, bad = XFFL_OK;
    char why[XFFL_ERRMSG_MAX] = "";
    *out = NULL;
    for (size_t i = 0; i < l.count && !*out; i++) {
        ckpt_manifest *m = NULL;
        pipe_manifest_bytes raw;
        st = pipe_manifest_load_signed(s, l.items[i].key, NULL, aggregator_key, &m, &raw);
        if (st != XFFL_OK) {
            if (bad == XFFL_OK) snprintf(why, sizeof why, "%s", xffl_errmsg());
            bad = st;
            continue;
        }
        *bytes += raw.len;
        free(raw.text);
        const char *ix = ckpt_manifest_get(m, "index"), *bx = ckpt_manifest_get(m, "base_index");
        if (ix && bx && !strcmp(ix, target->index_key) && !strcmp(bx, base_index)) {
            *out = m;
            snprintf(key, PIPE_KEY_MAX, "%s", l.items[i].key);
        } else
            ckpt_manifest_free(m);
    }
    store_listing_free(&l);
    if (*out) return XFFL_OK;
    if (bad != XFFL_OK) return xffl_fail(bad, "%s", why);
    return xffl_fail(XFFL_ERR_NOT_FOUND, "no update of %s from %s", target->index_key, base_index);
}

static XFFL_MUST_USE xffl_status apply_from(store *s, const pipe_version_ref *target, const char *base_index,
                                            const char *aggregator_key, const ckpt_param_table *t, float *model,
                                            uint64_t *bytes, uint64_t *full_bytes, char *used)
{
    ckpt_manifest *idx = NULL, *upd = NULL;
    char key[PIPE_KEY_MAX] = "";
    XFFL_FORWARD(pipe_manifest_load(s, target->index_key, target->index_sha, &idx, NULL));
    for (int i = 0; i < idx->n_objects; i++) *full_bytes += idx->objects[i].bytes;
    xffl_status st = find_update(s, target, base_index, aggregator_key, key, &upd, bytes);
    if (st == XFFL_OK) {
        if (used) snprintf(used, PIPE_KEY_MAX, "%s", key);
        st = apply_update(s, key, upd, idx, target->index_key, t, model, bytes);
    }
    ckpt_manifest_free(idx);
    ckpt_manifest_free(upd);
    return st;
}

xffl_status pipe_update_size(store *s, const pipe_version_ref *target, const char *base_index,
                             const char *aggregator_key, uint64_t *parts, uint64_t *fetched)
{
    ckpt_manifest *upd = NULL;
    char key[PIPE_KEY_MAX];
    uint64_t got = 0;
    xffl_status st = find_update(s, target, base_index, aggregator_key, key, &upd, &got);
    *fetched += got;
    XFFL_FORWARD(st);
    *parts = got;
    for (int i = 0; i < upd->n_objects; i++) *parts += upd->objects[i].bytes;
    ckpt_manifest_free(upd);
    return XFFL_OK;
}

xffl_status pipe_update_apply(store *s, const pipe_version_ref *target, const char *base_index,
                              const char *aggregator_key, const ckpt_param_table *t, float *model, uint64_t *bytes,
                              char *used)
{
    uint64_t b = 0, full = 0;
    xffl_status st = apply_from(s, target, base_index, aggregator_key, t, model, &b, &full, used);
    if (bytes) *bytes = b;
    return st;
}

xffl_status pipe_update_verify(store *s, const pipe_version_ref *target, const ckpt_param_table *t,
                               const char *aggregator_key, const float *base_model, const char *base_index,
                               int *n_checked)
{
    *n_checked = 0;
    if (target->version == 0) return XFFL_OK;
    store_listing l = {0};
    XFFL_FORWARD(pipe_update_list(s, target->version, &l));
    ckpt_manifest *idx = NULL;
    float *model = NULL;
    xffl_status st = l.count ? pipe_manifest_load(s, target->index_key, target->index_sha, &idx, NULL) : XFFL_OK;
    for (size_t i = 0; st == XFFL_OK && i < l.count; i++) {
        ckpt_manifest *upd = NULL;
        XFFL_CHECK_GOTO(st, pipe_manifest_load_signed(s, l.items[i].key, NULL, aggregator_key, &upd, NULL), done);
        const char *ix = ckpt_manifest_get(upd, "index"), *bx = ckpt_manifest_get(upd, "base_index");
        /* another INDEX's update (a lost race): an orphan, reported as one */
        if (!ix || strcmp(ix, target->index_key) != 0) {
            ckpt_manifest_free(upd);
            continue;
        }
        uint64_t bytes = 0;
        const int apply = base_model && base_index && bx && !strcmp(bx, base_index);
        if (apply && !model && !(model = xffl_alloc_big((size_t)t->total * 4))) st = xffl_fail(XFFL_ERR_NOMEM, "update check");
        if (st == XFFL_OK && apply) memcpy(model, base_model, (size_t)t->total * 4);
        if (st == XFFL_OK) st = apply_update(s, l.items[i].key, upd, idx, target->index_key, t, apply ? model : NULL, &bytes);
        if (st == XFFL_OK) (*n_checked)++;
        ckpt_manifest_free(upd);
    }
done:
    xffl_free_big(model);
    ckpt_manifest_free(idx);
    store_listing_free(&l);
    return st;
}
