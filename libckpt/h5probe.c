/* ckpt_h5_probe_isolated: a part another party wrote, parsed in a child first. See h5part.h. */
#include "libckpt/h5part.h"

#include <hdf5.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/isolate.h"
#include "libckpt/h5part_read.h"

typedef struct {
    char **paths;
    int count, cap, oom;
} found;

static herr_t visit(hid_t obj, const char *name, const H5O_info_t *info, void *data)
{
    (void)obj;
    found *f = data;
    if (info->type != H5O_TYPE_DATASET) return 0;
    if (f->count == f->cap) {
        int cap = f->cap ? 2 * f->cap : 64;
        char **p = realloc(f->paths, (size_t)cap * sizeof *p);
        if (!p) return f->oom = 1, -1;
        f->paths = p, f->cap = cap;
    }
    if (!(f->paths[f->count] = strdup(name))) return f->oom = 1, -1;
    f->count++;
    return 0;
}

/* Every scalar attribute of obj read as the readers read them (strings, integers,
 * numbers); others are never read, so never parsed here either. */
static herr_t attr(hid_t obj, const char *name, const H5A_info_t *ainfo, void *data)
{
    (void)ainfo;
    const char *what = data;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return -1;
    hid_t t = H5Aget_type(a), sp = H5Aget_space(a);
    H5T_class_t cls = H5Tget_class(t);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    H5Tclose(t);
    int ok = 1;
    if (n == 1 && cls == H5T_INTEGER) {
        int64_t v;
        ok = H5Aread(a, H5T_NATIVE_INT64, &v) >= 0;
    } else if (n == 1 && cls == H5T_FLOAT) {
        double v;
        ok = H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0;
    }
    H5Aclose(a);
    if (ok && n == 1 && cls == H5T_STRING) {
        char *v = NULL;
        ok = ckpt_h5_read_str_attr(obj, what, name, &v) == XFFL_OK;
        free(v);
    }
    return ok ? 0 : -1;
}

typedef struct {
    const char *path;
    uint64_t max_bytes;
} probe_ctx;

static XFFL_MUST_USE xffl_status probe(void *arg)
{
    const probe_ctx *p = arg;
    const ckpt_h5_options one = {.threads = 1}; /* no OpenMP pool in a forked child */
    ckpt_h5_reader *r = NULL;
    XFFL_FORWARD(ckpt_h5_reader_open(p->path, &one, &r));
    found f = {0};
    xffl_status s = XFFL_OK;
    hsize_t idx = 0;
    if (H5Aiterate2(r->file, H5_INDEX_NAME, H5_ITER_INC, &idx, attr, r->path) < 0)
        s = xffl_fail(XFFL_ERR_CORRUPT, "%s: unreadable root attribute", p->path);
    if (s == XFFL_OK && H5Ovisit(r->file, H5_INDEX_NAME, H5_ITER_INC, visit, &f) < 0)
        s = xffl_fail(f.oom ? XFFL_ERR_NOMEM : XFFL_ERR_CORRUPT, "%s: unreadable group structure", p->path);
    for (int i = 0; i < f.count && s == XFFL_OK; i++) {
        hid_t ds = H5Dopen2(r->file, f.paths[i], H5P_DEFAULT);
        idx = 0;
        if (ds < 0 || H5Aiterate2(ds, H5_INDEX_NAME, H5_ITER_INC, &idx, attr, r->path) < 0)
            s = xffl_fail(XFFL_ERR_CORRUPT, "%s: dataset %s: unreadable attributes", p->path, f.paths[i]);
        if (ds >= 0) H5Dclose(ds);
        if (s == XFFL_OK) s = ckpt_h5_probe_dataset(r, f.paths[i], p->max_bytes);
    }
    for (int i = 0; i < f.count; i++) free(f.paths[i]);
    free(f.paths);
    ckpt_h5_reader_close(r);
    return s;
}

xffl_status ckpt_h5_probe_isolated(const char *path, uint64_t max_bytes)
{
    probe_ctx p = {path, max_bytes};
    /* HDF5 decodes a foreign layout itself, far slower than the threaded path: 10 s and
     * 1 s per 16 MiB leaves room for that on a slow disk */
    struct stat sb;
    unsigned secs = 10 + (stat(path, &sb) == 0 ? (unsigned)((uint64_t)sb.st_size >> 24) : 0);
    return xffl_isolated(probe, &p, NULL, 0, secs, path);
}
