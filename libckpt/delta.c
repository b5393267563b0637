#include "libckpt/delta.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How tensor i is stored: dtype and dataset shape of its codes. */
static void code_layout(ckpt_codec c, const ckpt_param *p, ckpt_dtype *dt, int *ndim, int64_t shape[2])
{
    *dt = CKPT_DT_F32;
    *ndim = p->ndim;
    shape[0] = p->shape[0];
    shape[1] = p->shape[1];
    switch (c) {
    case CKPT_CODEC_FP32: break;
    case CKPT_CODEC_BF16: *dt = CKPT_DT_U16; break;
    case CKPT_CODEC_INT8: *dt = CKPT_DT_I8; break;
    case CKPT_CODEC_INT4:
        *dt = CKPT_DT_U8;
        *ndim = 1;
        shape[0] = (p->numel + 1) / 2;
        break;
    }
}

static xffl_status write_attrs(ckpt_h5_writer *w, const ckpt_delta_meta *m, int block, int part, int parts)
{
    XFFL_FORWARD(ckpt_h5_attr_str(w, "format", CKPT_DELTA_FORMAT));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "format_version", 1));
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
    XFFL_FORWARD(ckpt_h5_attr_int(w, "block", block));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "part", part));
    XFFL_FORWARD(ckpt_h5_attr_int(w, "parts", parts));
    return XFFL_OK;
}

xffl_status ckpt_delta_write(const char *dir, const ckpt_param_table *t, const float *delta,
                             const ckpt_delta_meta *meta, float *residual, uint64_t part_size,
                             const ckpt_h5_options *opt, const char *key_prefix, ckpt_manifest *commit,
                             ckpt_delta_file **files, int *nfiles)
{
    const int block = meta->block > 0 ? meta->block : CKPT_CODEC_BLOCK_DEFAULT;
    *files = NULL;
    *nfiles = 0;
    /* Part of each tensor first: the file's "parts" attribute needs the count. */
    int *part_of = calloc((size_t)t->count, sizeof *part_of);
    XFFL_RETURN_IF(!part_of, XFFL_ERR_NOMEM, "delta part plan");
    int parts = 1;
    uint64_t acc = 0;
    int64_t maxn = 1;
    for (int i = 0; i < t->count; i++) {
        uint64_t b = ckpt_codec_code_bytes(meta->codec, t->params[i].numel);
        if (part_size && acc > 0 && acc + b > part_size) {
            parts++;
            acc = 0;
        }
        acc += b;
        part_of[i] = parts - 1;
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    }
    xffl_status st = XFFL_OK;
    ckpt_delta_file *out = calloc((size_t)parts, sizeof *out);
    void *codes = malloc((size_t)maxn * 4);
    float *scales = malloc((size_t)(maxn / block + 2) * sizeof(float));
    float *dec = malloc((size_t)maxn * sizeof(float));
    ckpt_h5_writer *w = NULL;
    char tmp[4096];
    if (!out || !codes || !scales || !dec) {
        st = xffl_fail(XFFL_ERR_NOMEM, "delta encoding buffers (%lld floats)", (long long)maxn);
        goto done;
    }
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *p = &t->params[i];
        int part = part_of[i];
        if (!w) {
            snprintf(tmp, sizeof tmp, "%s/part-%03d.partial.h5", dir, part);
            XFFL_CHECK_GOTO(st, ckpt_h5_writer_create(tmp, opt, &w), done);
            XFFL_CHECK_GOTO(st, write_attrs(w, meta, block, part, parts), done);
        }
        const float *x = delta + p->offset;
        float *res = residual ? residual + p->offset : NULL;
        st = ckpt_codec_encode(meta->codec, x, p->numel, block, res, codes, scales);
        if (st != XFFL_OK) {
            st = xffl_wrap(st, "encoding delta of %s", p->name);
            goto done;
        }
        XFFL_CHECK_GOTO(st, ckpt_codec_decode(meta->codec, codes, scales, p->numel, block, dec), done);
        char hex[XFFL_SHA256_HEX], path[CKPT_NAME_MAX + 16];
        xffl_sha256_hex(dec, (size_t)p->numel * sizeof(float), hex);
        XFFL_CHECK_GOTO(st, ckpt_manifest_add_tensor(commit, p->name, CKPT_DT_F32, p->ndim, p->shape, hex), done);
        ckpt_dtype dt;
        int ndim;
        int64_t shape[2];
        code_layout(meta->codec, p, &dt, &ndim, shape);
        snprintf(path, sizeof path, "delta/%s", p->name);
        XFFL_CHECK_GOTO(st, ckpt_h5_write(w, path, dt, ndim, shape, codes, NULL, NULL), done);
        XFFL_CHECK_GOTO(st, ckpt_h5_dataset_attr_str(w, path, "encoding", ckpt_codec_name(meta->codec)), done);
        int64_t ns = ckpt_codec_scale_count(meta->codec, p->numel, block);
        if (ns > 0) {
            snprintf(path, sizeof path, "scale/%s", p->name);
            XFFL_CHECK_GOTO(st, ckpt_h5_write(w, path, CKPT_DT_F32, 1, &ns, scales, NULL, NULL), done);
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
    free(codes);
    free(scales);
    free(dec);
    if (st != XFFL_OK) {
        free(out);
        return st;
    }
    *files = out;
    *nfiles = parts;
    return XFFL_OK;
}

static xffl_status check_attr_int(ckpt_h5_reader *r, const char *name, int64_t want)
{
    int64_t v;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, name, &v));
    XFFL_RETURN_IF(v != want, XFFL_ERR_INVALID, "%s: %s is %lld, expected %lld", ckpt_h5_reader_path(r), name,
                   (long long)v, (long long)want);
    return XFFL_OK;
}

static xffl_status check_attr_str(ckpt_h5_reader *r, const char *name, const char *want)
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

/* One part: decode every delta/<name> it holds into delta; seen[] marks tensors. */
static xffl_status read_part(ckpt_h5_reader *r, const ckpt_param_table *t, const ckpt_manifest *commit,
                             const ckpt_delta_meta *ex, float *delta, char *seen, void *codes, float *scales,
                             int64_t maxn)
{
    const char *file = ckpt_h5_reader_path(r);
    XFFL_FORWARD(check_attr_str(r, "format", CKPT_DELTA_FORMAT));
    XFFL_FORWARD(check_attr_int(r, "round", ex->round));
    XFFL_FORWARD(check_attr_int(r, "base_version", ex->base_version));
    XFFL_FORWARD(check_attr_str(r, "base_index", ex->base_index));
    XFFL_FORWARD(check_attr_str(r, "facility", ex->facility));
    XFFL_FORWARD(check_attr_str(r, "encoding", ckpt_codec_name(ex->codec)));
    int64_t block;
    XFFL_FORWARD(ckpt_h5_get_attr_int(r, "block", &block));
    XFFL_RETURN_IF(block < 1 || block > (1 << 24), XFFL_ERR_INVALID, "%s: block %lld out of range", file,
                   (long long)block);
    char **names = NULL;
    int count = 0;
    XFFL_FORWARD(ckpt_h5_list(r, "delta", &names, &count));
    xffl_status st = XFFL_OK;
    for (int k = 0; k < count && st == XFFL_OK; k++) {
        int i = ckpt_param_find(t, names[k]);
        if (i < 0) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor delta/%s is not in the model", file, names[k]);
            break;
        }
        const ckpt_param *p = &t->params[i];
        if (seen[i]) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s appears twice in the delta", file, p->name);
            break;
        }
        seen[i] = 1;
        XFFL_RETURN_IF(p->numel > maxn, XFFL_ERR_INTERNAL, "tensor %s larger than the buffers", p->name);
        ckpt_dtype dt;
        int ndim;
        int64_t shape[2];
        code_layout(ex->codec, p, &dt, &ndim, shape);
        char path[CKPT_NAME_MAX + 16];
        snprintf(path, sizeof path, "delta/%s", p->name);
        if ((st = ckpt_h5_read(r, path, dt, ndim, shape, codes, 0, NULL)) != XFFL_OK) break;
        int64_t ns = ckpt_codec_scale_count(ex->codec, p->numel, (int)block);
        if (ns > 0) {
            snprintf(path, sizeof path, "scale/%s", p->name);
            if ((st = ckpt_h5_read(r, path, CKPT_DT_F32, 1, &ns, scales, 0, NULL)) != XFFL_OK) break;
        }
        float *out = delta + p->offset;
        if ((st = ckpt_codec_decode(ex->codec, codes, scales, p->numel, (int)block, out)) != XFFL_OK) {
            st = xffl_wrap(st, "%s: tensor %s", file, p->name);
            break;
        }
        for (int64_t j = 0; j < p->numel; j++)
            if (!isfinite(out[j])) {
                st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s has a non-finite value (%g) at element %lld", file,
                               p->name, out[j], (long long)j);
                break;
            }
        if (st != XFFL_OK) break;
        int ti = ckpt_manifest_find_tensor(commit, p->name);
        if (ti < 0) {
            st = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s has no tensor line in its COMMIT", file, p->name);
            break;
        }
        char hex[XFFL_SHA256_HEX];
        xffl_sha256_hex(out, (size_t)p->numel * sizeof(float), hex);
        if (strcmp(hex, commit->tensors[ti].sha256) != 0)
            st = xffl_fail(XFFL_ERR_CORRUPT, "%s: decoded tensor %s has sha256 %.12s…, its COMMIT says %.12s…", file,
                           p->name, hex, commit->tensors[ti].sha256);
    }
    ckpt_h5_names_free(names, count);
    return st;
}

xffl_status ckpt_delta_read(const char *const *paths, int n, const ckpt_param_table *t, const ckpt_manifest *commit,
                            const ckpt_delta_meta *expect, const ckpt_h5_options *opt, float *delta)
{
    int64_t maxn = 1;
    for (int i = 0; i < t->count; i++)
        if (t->params[i].numel > maxn) maxn = t->params[i].numel;
    char *seen = calloc((size_t)t->count, 1);
    void *codes = malloc((size_t)maxn * 4);
    float *scales = malloc((size_t)(maxn + 1) * sizeof(float)); /* block may be 1 */
    xffl_status st = XFFL_OK;
    if (!seen || !codes || !scales) {
        st = xffl_fail(XFFL_ERR_NOMEM, "delta decoding buffers (%lld floats)", (long long)maxn);
        goto done;
    }
    for (int k = 0; k < n && st == XFFL_OK; k++) {
        ckpt_h5_reader *r = NULL;
        XFFL_CHECK_GOTO(st, ckpt_h5_reader_open(paths[k], opt, &r), done);
        st = read_part(r, t, commit, expect, delta, seen, codes, scales, maxn);
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
    free(codes);
    free(scales);
    return st;
}
