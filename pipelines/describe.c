/* show and verify of one file or one version. See describe.h. */
#include "pipelines/describe.h"
#include "pipelines/update.h"
#include "pipelines/trust.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "libckpt/delta.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

/* The groups an xffl file can hold datasets in. */
static const char *const file_groups[] = {"model", "outer", "outer/m", "outer/v", "delta", "scale", "xor"};
enum { N_FILE_GROUPS = sizeof file_groups / sizeof file_groups[0] };

/* Calls fn for every dataset in the groups an xffl file can hold, with its path and
 * info; stops at the first error. */
typedef xffl_status (*dataset_fn)(ckpt_h5_reader *r, const char *path, const ckpt_h5_dataset_info *info, void *ctx);
static XFFL_MUST_USE xffl_status each_dataset(ckpt_h5_reader *r, dataset_fn fn, void *ctx)
{
    for (size_t g = 0; g < N_FILE_GROUPS; g++) {
        char **names = NULL;
        int n = 0;
        if (ckpt_h5_list(r, file_groups[g], &names, &n) != XFFL_OK) continue;
        xffl_status s = XFFL_OK;
        for (int k = 0; k < n && s == XFFL_OK; k++) {
            char path[512];
            ckpt_h5_dataset_info info;
            snprintf(path, sizeof path, "%s/%s", file_groups[g], names[k]);
            s = ckpt_h5_info(r, path, &info);
            if (s == XFFL_OK) s = fn(r, path, &info, ctx);
        }
        ckpt_h5_names_free(names, n);
        XFFL_FORWARD(s);
    }
    return XFFL_OK;
}

typedef struct {
    pipe_description *d;
    int cap;
} rows_ctx;

static XFFL_MUST_USE xffl_status add_row(ckpt_h5_reader *r, const char *name, const ckpt_h5_dataset_info *info, void *ctx)
{
    (void)r;
    rows_ctx *c = ctx;
    pipe_description *d = c->d;
    if (d->n_rows == c->cap) {
        int nc = c->cap ? c->cap * 2 : 64;
        pipe_tensor_row *rows = realloc(d->rows, (size_t)nc * sizeof *rows);
        XFFL_RETURN_IF(!rows, XFFL_ERR_NOMEM, "tensor list");
        d->rows = rows;
        c->cap = nc;
    }
    snprintf(d->rows[d->n_rows].name, sizeof d->rows[d->n_rows].name, "%s", name);
    d->rows[d->n_rows++].info = *info;
    return XFFL_OK;
}

/* Rows in the order people know a model by: group, then the parameter table. */
static const ckpt_param_table *order_table;

static int rank(const char *name)
{
    static const char *const groups[] = {"model/", "outer/m/", "outer/v/", "outer/", "delta/", "scale/"};
    for (int g = 0; g < 6; g++) {
        size_t n = strlen(groups[g]);
        if (strncmp(name, groups[g], n) == 0) {
            int i = order_table ? ckpt_param_find(order_table, name + n) : -1;
            return g * 100000 + (i < 0 ? 99999 : i);
        }
    }
    return 6 * 100000;
}

static int cmp_rows(const void *a, const void *b)
{
    const pipe_tensor_row *x = a, *y = b;
    int rx = rank(x->name), ry = rank(y->name);
    return rx != ry ? (rx < ry ? -1 : 1) : strcmp(x->name, y->name);
}

/* Sorts the rows and adds up the totals. */
static void finish(pipe_description *d)
{
    ckpt_param_table *t = NULL;
    if (d->have_cfg && ckpt_param_table_create(&d->cfg, &t) != XFFL_OK) t = NULL;
    order_table = t;
    if (d->n_rows) qsort(d->rows, (size_t)d->n_rows, sizeof *d->rows, cmp_rows);
    order_table = NULL;
    ckpt_param_table_free(t);
    for (int i = 0; i < d->n_rows; i++) {
        if (strncmp(d->rows[i].name, "model/", 6) == 0 || strncmp(d->rows[i].name, "delta/", 6) == 0)
            d->parameters += d->rows[i].info.numel;
        d->raw_bytes += d->rows[i].info.raw_bytes;
        d->stored_bytes += d->rows[i].info.stored_bytes;
    }
}

/* The root attributes show prints, in its order: these strings, then these integers. */
static XFFL_MUST_USE xffl_status read_attrs(ckpt_h5_reader *r, pipe_description *d)
{
    static const char *const strs[] = {"format", "algorithm", "contributors", "facility", "encoding", "groups"};
    static const char *const ints[] = {"format_version", "version", "parent", "round", "base_version",
                                       "tokens_seen", "tokens", "steps", "part", "parts"};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++) {
        char *v = NULL;
        if (ckpt_h5_get_attr_str(r, strs[i], &v) != XFFL_OK) continue;
        d->attrs[d->n_attrs++] = (pipe_file_attr){strs[i], v, 0};
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        int64_t v;
        if (ckpt_h5_get_attr_int(r, ints[i], &v) != XFFL_OK) continue;
        char buf[32];
        snprintf(buf, sizeof buf, "%" PRId64, v);
        char *s = strdup(buf);
        XFFL_RETURN_IF(!s, XFFL_ERR_NOMEM, "%s", ckpt_h5_reader_path(r));
        d->attrs[d->n_attrs++] = (pipe_file_attr){ints[i], s, 1};
    }
    return XFFL_OK;
}

xffl_status pipe_describe_file(const char *path, pipe_description *d)
{
    memset(d, 0, sizeof *d);
    ckpt_h5_reader *r;
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    rows_ctx rc = {d, 0};
    d->have_cfg = pipe_model_attrs_read(r, &d->cfg) == XFFL_OK;
    xffl_status s = each_dataset(r, add_row, &rc);
    if (s == XFFL_OK && d->n_rows == 0) s = xffl_fail(XFFL_ERR_INVALID, "%s: no tensors (not an xffl file?)", path);
    if (s == XFFL_OK) s = read_attrs(r, d);
    ckpt_h5_reader_close(r);
    if (s != XFFL_OK) {
        pipe_description_free(d);
        return s;
    }
    finish(d);
    return XFFL_OK;
}

xffl_status pipe_describe_version(store *s, int64_t version, pipe_description *d)
{
    memset(d, 0, sizeof *d);
    char *dir = NULL;
    rows_ctx rc = {d, 0};
    xffl_status st;
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, version, &d->ref), out);
    XFFL_CHECK_GOTO(st, pipe_manifest_load(s, d->ref.index_key, d->ref.index_sha, &d->index, NULL), out);
    XFFL_CHECK_GOTO(st, xffl_mkdtemp("show", &dir), out);
    for (int i = 0; i < d->index->n_objects; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/part.h5", dir);
        const ckpt_manifest_object *o = &d->index->objects[i];
        XFFL_CHECK_GOTO(st, store_get_file_verified(s, o->name, o->sha256, path), out);
        ckpt_h5_reader *r;
        XFFL_CHECK_GOTO(st, ckpt_h5_reader_open(path, NULL, &r), out);
        if (!d->have_cfg) d->have_cfg = pipe_model_attrs_read(r, &d->cfg) == XFFL_OK;
        st = each_dataset(r, add_row, &rc);
        ckpt_h5_reader_close(r);
        if (st != XFFL_OK) {
            xffl_wrap(st, "%s", o->name);
            goto out;
        }
    }
    finish(d);
out:
    if (dir) xffl_ignore(xffl_rmtree(dir)); /* best effort: a temporary directory */
    free(dir);
    if (st != XFFL_OK) pipe_description_free(d);
    return st;
}

void pipe_description_free(pipe_description *d)
{
    if (!d) return;
    free(d->rows);
    for (int i = 0; i < d->n_attrs; i++) free(d->attrs[i].value);
    ckpt_manifest_free(d->index);
    memset(d, 0, sizeof *d);
}

/* Reads a dataset whole, which checks its digest. */
static XFFL_MUST_USE xffl_status read_dataset(ckpt_h5_reader *r, const char *path, const ckpt_h5_dataset_info *info, void *ctx)
{
    void *buf = malloc(info->raw_bytes ? info->raw_bytes : 1);
    XFFL_RETURN_IF(!buf, XFFL_ERR_NOMEM, "%s", path);
    xffl_status s = ckpt_h5_read(r, path, info->dtype, info->ndim, info->shape, buf, 0, NULL);
    free(buf);
    ++*(int *)ctx;
    return s;
}

/* A delta part has no parameter table slice to check: every dataset's digest is. */
static XFFL_MUST_USE xffl_status verify_any_datasets(ckpt_h5_reader *r, int *n_checked)
{
    int checked = 0;
    XFFL_FORWARD(each_dataset(r, read_dataset, &checked));
    XFFL_RETURN_IF(checked == 0, XFFL_ERR_INVALID, "%s: no datasets to verify", ckpt_h5_reader_path(r));
    *n_checked = checked;
    return XFFL_OK;
}

xffl_status pipe_verify_file(const char *path, char *format, size_t cap, int *n_checked)
{
    ckpt_h5_reader *r;
    /* any file may come from anywhere: parsed in a child first (docs/design.md "HDF5 files") */
    XFFL_FORWARD(ckpt_h5_probe_isolated(path, UINT64_MAX));
    XFFL_FORWARD(ckpt_h5_reader_open(path, NULL, &r));
    char *fmt = NULL;
    xffl_status s = ckpt_h5_get_attr_str(r, "format", &fmt);
    if (s == XFFL_ERR_NOT_FOUND) s = xffl_fail(XFFL_ERR_INVALID, "%s: no format attribute (not an xffl file)", path);
    if (s == XFFL_OK) {
        snprintf(format, cap, "%s", fmt);
        /* a delta part or an update part (pipelines/update.h): every dataset's digest */
        const int update = strcmp(fmt, PIPE_UPDATE_PART_FORMAT) == 0;
        if (update || strcmp(fmt, CKPT_DELTA_FORMAT) == 0) {
            s = update ? ckpt_h5_check_format(r, PIPE_UPDATE_PART_FORMAT, PIPE_UPDATE_PART_FORMAT_VERSION)
                       : ckpt_h5_check_format(r, CKPT_DELTA_FORMAT, CKPT_DELTA_FORMAT_VERSION);
            if (s == XFFL_OK) s = verify_any_datasets(r, n_checked);
            ckpt_h5_reader_close(r);
            r = NULL;
        }
    }
    free(fmt);
    if (r) {
        ckpt_h5_reader_close(r);
        if (s == XFFL_OK) s = pipe_part_verify_file(path, n_checked);
    }
    return s;
}

xffl_status pipe_verify_version(store *s, int64_t version, pipe_version_check *out)
{
    memset(out, 0, sizeof *out);
    pipe_federation f;
    pipe_version_info info = {0};
    ckpt_param_table *t = NULL;
    xffl_status st;
    XFFL_CHECK_GOTO(st, pipe_version_resolve(s, version, &out->ref), out);
    XFFL_CHECK_GOTO(st, pipe_federation_load_for(s, &out->ref, &f, out->federation_sha), out);
    /* the pin in the default key directory, and the aggregator's signature */
    XFFL_CHECK_GOTO(st, pipe_trust_pin(s, NULL, out->federation_sha), out);
    XFFL_CHECK_GOTO(st, pipe_trust_check_index(s, &f, &out->ref, NULL), out);
    XFFL_CHECK_GOTO(st, ckpt_param_table_create(&f.model, &t), out);
    XFFL_CHECK_GOTO(st, pipe_version_fetch(s, &out->ref, t, 0, NULL, NULL, &info), out);
    if (strcmp(info.federation_sha, out->federation_sha) != 0) {
        st = xffl_fail(XFFL_ERR_CORRUPT, "%s: %s has sha256 %.12s but %s records federation=%.12s", store_url(s),
                       PIPE_FEDERATION_KEY, out->federation_sha, out->ref.index_key, info.federation_sha);
        goto out;
    }
    out->parts = info.index->n_objects;
    out->tensors = info.index->n_tensors;
    out->stored_bytes = info.stored_bytes;
out:
    pipe_version_info_clear(&info);
    ckpt_param_table_free(t);
    return st;
}
