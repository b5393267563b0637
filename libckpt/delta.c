#include "libckpt/delta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

/* Dataset d of tensor p as the encoding describes it: its shape and elements. A
 * count of 0 means the encoding writes no such dataset for p. */
static int64_t dataset_layout(const ckpt_codec_def *def, int d, const ckpt_param *p, const ckpt_codec_params *cp, int *ndim,
                              int64_t shape[2])
{
    const ckpt_codec_dataset *ds = &def->datasets[d];
    if (!ds->count) {
        *ndim = p->ndim;
        shape[0] = p->shape[0];
        shape[1] = p->shape[1];
        return p->numel;
    }
    *ndim = 1;
    shape[0] = ds->count(p->numel, cp);
    return shape[0];
}

/* Per-dataset buffers big enough for every tensor of t with params cp. */
static XFFL_MUST_USE xffl_status alloc_sets(ckpt_codec c, const ckpt_param_table *t, const ckpt_codec_params *cp,
                                            void *bufs[CKPT_CODEC_MAX_DATASETS])
{
    const ckpt_codec_def *def = ckpt_codec_get(c);
    for (int d = 0; def && d < def->n_datasets; d++) {
        size_t most = 1;
        for (int i = 0; i < t->count; i++) {
            size_t b = ckpt_codec_dataset_bytes(c, d, t->params[i].numel, cp);
            if (b > most) most = b;
        }
        bufs[d] = malloc(most);
        XFFL_RETURN_IF(!bufs[d], XFFL_ERR_NOMEM, "delta %s buffer (%zu bytes)", def->datasets[d].group, most);
    }
    return XFFL_OK;
}

static void free_sets(void *bufs[CKPT_CODEC_MAX_DATASETS])
{
    for (int d = 0; d < CKPT_CODEC_MAX_DATASETS; d++) {
        free(bufs[d]);
        bufs[d] = NULL;
    }
}

static XFFL_MUST_USE xffl_status write_attrs(ckpt_h5_writer *w, const ckpt_delta_meta *m, const ckpt_codec_params *cp,
                                             int part, int parts)
{
    XFFL_FORWARD(ckpt_h5_attr_str(w, "format", CKPT_DELTA_FORMAT));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "format_version", CKPT_DELTA_FORMAT_VERSION));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "round", m->round));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "base_version", m->base_version));
    XFFL_FORWARD(ckpt_h5_attr_str(w, "base_index", m->base_index));
    XFFL_FORWARD(ckpt_h5_attr_str(w, "facility", m->facility));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "tokens", m->tokens));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "steps", m->steps));
    XFFL_FORWARD(ckpt_h5_attr_double(w, "loss_first", m->loss_first));
    XFFL_FORWARD(ckpt_h5_attr_double(w, "loss_last", m->loss_last));
    XFFL_FORWARD(ckpt_h5_attr_double(w, "loss_mean", m->loss_mean));
    XFFL_FORWARD(ckpt_h5_attr_str(w, "encoding", ckpt_codec_name(m->codec)));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "block", cp->block));
    if (ckpt_codec_takes_k(m->codec)) XFFL_FORWARD(ckpt_h5_attr_int(w, "k", cp->k));
    if (cp->gaps) XFFL_FORWARD(ckpt_h5_attr_int(w, "index_gaps", 1));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "part", part));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "parts", parts));
    return XFFL_OK;
}

xffl_status ckpt_delta_write(const char *dir, const ckpt_param_table *t, const float *delta,
                             const ckpt_delta_meta *meta, float *residual, uint64_t part_size,
                             const ckpt_h5_options *opt, const char *key_prefix, ckpt_manifest *commit,
                             ckpt_delta_file **files, int *nfiles)
{
    ckpt_codec_params cp = ckpt_codec_default_params(meta->codec);
    if (meta->block > 0) cp.block = meta->block;
    if (meta->k > 0) cp.k = meta->k;
    cp.gaps = meta->gaps;
    *files = NULL;
    *nfiles = 0;
    /* Part of each tensor first: the file's "parts" attribute needs the count. */
    int *part_of = calloc((size_t)t->count, sizeof *part_of);
    XFFL_RETURN_IF(!part_of, XFFL_ERR_NOMEM, "delta part plan");
    int parts = 1;
    uint64_t acc = 0;
    int64_t maxn = 1;
    for (int i = 0; i < t->count; i++) {
        uint64_t b = ckpt_codec_dataset_bytes(meta->codec, 0, t->params[i].numel, &cp);
        if (part_size && acc > 0 && acc + b > part_size) {
            parts++;
            acc = 0;
        }
        acc += b;
        part_of[i] = parts - 1;
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    }
    xffl_status st = XFFL_OK;
    const ckpt_codec_def *def = ckpt_codec_get(meta->codec);
    void *bufs[CKPT_CODEC_MAX_DATASETS] = {0};
    ckpt_delta_file *out = calloc((size_t)parts, sizeof *out);
    float *dec = xffl_alloc_big((size_t)maxn * sizeof(float));
    ckpt_h5_writer *w = NULL;
    char tmp[4096];
    if (!def) {
        st = xffl_fail(XFFL_ERR_INVALID, "delta encoding %d unknown", (int)meta->codec);
        goto done;
    }
    if (!out || !dec) {
        st = xffl_fail(XFFL_ERR_NOMEM, "delta encoding buffers (%lld floats)", (long long)maxn);
        goto done;
    }
    XFFL_CHECK_GOTO(st, alloc_sets(meta->codec, t, &cp, bufs), done);
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *p = &t->params[i];
        int part = part_of[i];
        if (!w) {
            snprintf(tmp, sizeof tmp, "%s/part-%03d.partial.h5", dir, part);
            XFFL_CHECK_GOTO(st, ckpt_h5_writer_create(tmp, opt, &w), done);
            XFFL_CHECK_GOTO(st, write_attrs(w, meta, &cp, part, parts), done);
        }
        const float *x = delta + p->offset;
        float *res = residual ? residual + p->offset : NULL;
        if (res && meta->decay > 0 && meta->decay != 1)
            for (int64_t j = 0; j < p->numel; j++) res[j] *= (float)meta->decay;
        st = ckpt_codec_encode_sets(meta->codec, x, p->numel, &cp, res, bufs);
        if (st != XFFL_OK) {
            st = xffl_wrap(st, "encoding delta of %s", p->name);
            goto done;
        }
        XFFL_CHECK_GOTO(st, ckpt_codec_decode_sets(meta->codec, (const void *const *)bufs, p->numel, &cp, dec), done);
        char hex[XFFL_SHA256_HEX], path[CKPT_NAME_MAX + 16];
        xffl_sha256_hex(dec, (size_t)p->numel * sizeof(float), hex);
        XFFL_CHECK_GOTO(st, ckpt_manifest_add_tensor(commit, p->name, CKPT_DT_F32, p->ndim, p->shape, hex), done);
        for (int d = 0; d < def->n_datasets; d++) {
            const ckpt_codec_dataset *ds = &def->datasets[d];
            int ndim;
            int64_t shape[2];
            if (dataset_layout(def, d, p, &cp, &ndim, shape) == 0) continue;
            snprintf(path, sizeof path, "%s/%s", ds->group, p->name);
            XFFL_CHECK_GOTO(st, ckpt_h5_write(w, path, ds->dtype, ndim, shape, bufs[d], NULL, NULL), done);
            if (ds->tagged) XFFL_CHECK_GOTO(st, ckpt_h5_dataset_attr_str(w, path, "encoding", def->name), done);
        }
        if (i + 1 == t->count || part_of[i + 1] != part) {
            ckpt_h5_writer *cw = w;
            w = NULL;
            XFFL_CHECK_GOTO(st, ckpt_h5_writer_close(cw), done);
            ckpt_delta_file *f = &out[part];
            XFFL_CHECK_GOTO(st, xffl_sha256_file(tmp, f->sha256, &f->bytes), done);
            char stem[32];
            snprintf(stem, sizeof stem, "part-%03d", part);
            XFFL_CHECK_GOTO(st, ckpt_content_name(stem, f->sha256, ".h5", f->name, sizeof f->name), done);
            snprintf(f->path, sizeof f->path, "%s/%s", dir, f->name);
            if (rename(tmp, f->path) != 0) {
                st = xffl_fail(XFFL_ERR_IO, "renaming %s to %s", tmp, f->path);
                goto done;
            }
            char key[4096 + 64];
            snprintf(key, sizeof key, "%s%s", key_prefix ? key_prefix : "", f->name);
            XFFL_CHECK_GOTO(st, ckpt_manifest_add_object(commit, key, f->bytes, f->sha256), done);
        }
    }
done:
    ckpt_h5_writer_abort(w);
    free(part_of);
    free_sets(bufs);
    free(dec);
    if (st != XFFL_OK) {
        free(out);
        return st;
    }
    *files = out;
    *nfiles = parts;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status check_attr_int(ckpt_h5_reader *r, const char *name, int64_t want)
{
    int64_t v;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, name, &v));
    XFFL_RETURN_IF(v != want, XFFL_ERR_INVALID, "%s: %s is %lld, expected %lld", ckpt_h5_reader_path(r), name,
                   (long long)v, (long long)want);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status check_attr_str(ckpt_h5_reader *r, const char *name, const char *want)
{
    char *v = NULL;
    XFFL_FORWARD(ckpt_h5_get_attr_str(r, name, &v));
    int same = want && !strcmp(v, want);
    xffl_status st = same ? XFFL_OK
                          : xffl_fail(XFFL_ERR_INVALID, "%s: %s is '%s', expected '%s'", ckpt_h5_reader_path(r), name,
                                      v, want ? want : "");
    free(v);
    return st;
}

/* The decoded tensors order[0..n) of delta: finite, and each the digest of its COMMIT
 * tensor line; hashed in parallel, the first failure in that order named. */
static XFFL_MUST_USE xffl_status check_decoded(const char *file, const ckpt_param_table *t, const ckpt_manifest *commit,
                                               const float *delta, const int *order, int n)
{
    int64_t *bad = malloc((size_t)(n ? n : 1) * sizeof *bad); /* first non-finite element, or -1 */
    char(*hex)[XFFL_SHA256_HEX] = malloc((size_t)(n ? n : 1) * sizeof *hex);
    xffl_status st = bad && hex ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "%s: checks of %d tensors", file, n);
#pragma omp parallel for schedule(dynamic) if (st == XFFL_OK)
    for (int k = 0; k < n; k++) {
        const ckpt_param *p = &t->params[order[k]];
        const float *out = delta + p->offset;
        bad[k] = -1;
        for (int64_t j = 0; j < p->numel; j++)
            if (!isfinite(out[j])) {
                bad[k] = j;
                break;
            }
        xffl_sha256_hex(out, (size_t)p->numel * sizeof(float), hex[k]);
    }
    for (int k = 0; k < n && st == XFFL_OK; k++) {
        const ckpt_param *p = &t->params[order[k]];
        int ti = ckpt_manifest_find_tensor(commit, p->name);
        if (bad[k] >= 0)
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s has a non-finite value (%g) at element %lld", file, p->name,
                           delta[p->offset + bad[k]], (long long)bad[k]);
        else if (ti < 0)
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s has no tensor line in its COMMIT", file, p->name);
        else if (strcmp(hex[k], commit->tensors[ti].sha256) != 0)
            st = xffl_fail(XFFL_ERR_CORRUPT, "%s: decoded tensor %s has sha256 %.12s…, its COMMIT says %.12s…", file,
                           p->name, hex[k], commit->tensors[ti].sha256);
    }
    free(bad);
    free(hex);
    return st;
}

/* One part: decode every <group>/<name> set it holds into delta; seen[] marks tensors. */
static XFFL_MUST_USE xffl_status read_part(ckpt_h5_reader *r, const ckpt_param_table *t, const ckpt_manifest *commit,
                             const ckpt_delta_meta *ex, float *delta, char *seen)
{
    const char *file = ckpt_h5_reader_path(r);
    const ckpt_codec_def *def = ckpt_codec_get(ex->codec);
    XFFL_RETURN_IF(!def, XFFL_ERR_INVALID, "delta encoding %d unknown", (int)ex->codec);
    XFFL_FORWARD(ckpt_h5_check_format(r, CKPT_DELTA_FORMAT, CKPT_DELTA_FORMAT_VERSION));
    XFFL_FORWARD(check_attr_int(r, "round", ex->round));
    XFFL_FORWARD(check_attr_int(r, "base_version", ex->base_version));
    XFFL_FORWARD(check_attr_str(r, "base_index", ex->base_index));
    XFFL_FORWARD(check_attr_str(r, "facility", ex->facility));
    XFFL_FORWARD(check_attr_str(r, "encoding", def->name));
    int64_t block;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, "block", &block));
    XFFL_RETURN_IF(block < 1 || block > (1 << 24), XFFL_ERR_INVALID, "%s: block %lld out of range", file,
                   (long long)block);
    ckpt_codec_params cp = {(int)block, 0, 0};
    if (def->takes_k) { /* the federation's k, not the file's word for it */
        cp.k = ex->k > 0 ? ex->k : ckpt_codec_default_params(ex->codec).k;
        XFFL_FORWARD(check_attr_int(r, "k", cp.k));
        cp.gaps = ex->gaps; /* likewise: the file's attribute must agree (absent: 0) */
        int64_t g = 0;
        if (ckpt_h5_has_attr(r, "index_gaps")) XFFL_FORWARD(ckpt_h5_get_attr_int(r, "index_gaps", &g));
        XFFL_RETURN_IF(g != cp.gaps, XFFL_ERR_INVALID, "%s: attribute index_gaps is %lld, the federation says %d", file,
                       (long long)g, cp.gaps);
    }
    xffl_status st = ckpt_codec_check_params(ex->codec, &cp);
    if (st != XFFL_OK) return xffl_wrap(st, "%s", file);
    void *bufs[CKPT_CODEC_MAX_DATASETS] = {0};
    st = alloc_sets(ex->codec, t, &cp, bufs);
    char **names = NULL;
    int count = 0, *order = NULL, done = 0; /* order[0..done): tensors decoded, file order */
    if (st == XFFL_OK) st = ckpt_h5_list(r, def->datasets[0].group, &names, &count);
    if (st == XFFL_OK && !(order = malloc((size_t)(count ? count : 1) * sizeof *order)))
        st = xffl_fail(XFFL_ERR_NOMEM, "%s: %d tensors", file, count);
    /* HDF5 reads one tensor at a time (one global lock); the checks of what they decode
     * to run after, in parallel (7b: 27 GB of floats a delta to hash) */
    for (int k = 0; k < count && st == XFFL_OK; k++) {
        int i = ckpt_param_find(t, names[k]);
        if (i < 0) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s/%s is not in the model", file, def->datasets[0].group,
                           names[k]);
            break;
        }
        const ckpt_param *p = &t->params[i];
        if (seen[i]) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s appears twice in the delta", file, p->name);
            break;
        }
        seen[i] = 1;
        for (int d = 0; d < def->n_datasets && st == XFFL_OK; d++) {
            int ndim;
            int64_t shape[2];
            if (dataset_layout(def, d, p, &cp, &ndim, shape) == 0) continue;
            char path[CKPT_NAME_MAX + 16];
            snprintf(path, sizeof path, "%s/%s", def->datasets[d].group, p->name);
            st = ckpt_h5_read(r, path, def->datasets[d].dtype, ndim, shape, bufs[d], 0, NULL);
        }
        if (st != XFFL_OK) break;
        float *out = delta + p->offset;
        if ((st = ckpt_codec_decode_sets(ex->codec, (const void *const *)bufs, p->numel, &cp, out)) != XFFL_OK) {
            st = xffl_wrap(st, "%s: tensor %s", file, p->name);
            break;
        }
        order[done++] = i;
    }
    /* the tensors decoded before any failure, checked; the first failing one in file
     * order is reported before a later tensor's failure, as one pass would */
    if (order) {
        xffl_status c = check_decoded(file, t, commit, delta, order, done);
        if (c != XFFL_OK) st = c; /* its message is the one left */
    }
    free(order);
    ckpt_h5_names_free(names, count);
    free_sets(bufs);
    return st;
}

xffl_status ckpt_delta_read(const char *const *paths, int n, const ckpt_param_table *t, const ckpt_manifest *commit,
                            const ckpt_delta_meta *expect, const ckpt_h5_options *opt, float *delta)
{
    char *seen = calloc((size_t)t->count, 1);
    XFFL_RETURN_IF(!seen, XFFL_ERR_NOMEM, "delta decoding: %d tensor marks", t->count);
    xffl_status st = XFFL_OK;
    for (int k = 0; k < n && st == XFFL_OK; k++) {
        ckpt_h5_reader *r = NULL;
        XFFL_CHECK_GOTO(st, ckpt_h5_reader_open(paths[k], opt, &r), done);
        st = read_part(r, t, commit, expect, delta, seen);
        ckpt_h5_reader_close(r);
    }
    for (int i = 0; i < t->count && st == XFFL_OK; i++)
        if (!seen[i])
            st = xffl_fail(XFFL_ERR_INVALID, "delta of %s for round %lld lacks tensor %s", expect->facility,
                           (long long)expect->round, t->params[i].name);
    if (st == XFFL_OK && commit->n_tensors != t->count)
        st = xffl_fail(XFFL_ERR_INVALID, "COMMIT of %s lists %d tensors, the model has %d", expect->facility,
                       commit->n_tensors, t->count);
done:
    free(seen);
    return st;
}
