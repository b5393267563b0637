/* One HDF5 part file, reading: raw chunks fetched with H5Dread_chunk, decoded in
 * OpenMP tasks, every digest checked; other layouts through HDF5's own pipeline.
 * See h5part.h. */
#include "libckpt/h5part.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libckpt/h5pipe.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"

struct ckpt_h5_reader {
    hid_t file;
    char *path;
    int threads;
    ckpt_pipeline pl;
};

xffl_status ckpt_h5_reader_open(const char *path, const ckpt_h5_options *opt, ckpt_h5_reader **out)
{
    ckpt_h5_setup();
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no such file", path);
        return xffl_fail(XFFL_ERR_IO, "%s: %s", path, strerror(errno));
    }
    XFFL_RETURN_IF(!S_ISREG(st.st_mode), XFFL_ERR_INVALID, "%s: not a regular file", path);
    XFFL_RETURN_IF(st.st_size == 0, XFFL_ERR_CORRUPT, "%s: empty file, not HDF5", path);
    htri_t is = H5Fis_hdf5(path);
    XFFL_RETURN_IF(is <= 0, XFFL_ERR_CORRUPT, "%s: not an HDF5 file", path);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    XFFL_RETURN_IF(f < 0, XFFL_ERR_CORRUPT, "%s: damaged or truncated HDF5 file (cannot open)", path);
    ckpt_h5_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->path = strdup(path))) {
        free(r);
        H5Fclose(f);
        return xffl_fail(XFFL_ERR_NOMEM, "reader for %s", path);
    }
    r->file = f;
    r->threads = ckpt_h5_threads(opt ? opt->threads : 0);
    ckpt_pipeline_take(&r->pl);
    /* Parts are read front to back: ask for the whole file now. Chunk reads through
     * HDF5 are synchronous, one at a time; without this a cold read crawls at the
     * default readahead window while the decoding threads wait. */
    int fd = open(path, O_RDONLY);
    if (fd >= 0) {
        posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        posix_fadvise(fd, 0, 0, POSIX_FADV_WILLNEED);
        close(fd);
    }
    *out = r;
    return XFFL_OK;
}

void ckpt_h5_reader_close(ckpt_h5_reader *r)
{
    if (!r) return;
    H5Fclose(r->file);
    ckpt_pipeline_release(&r->pl);
    free(r->path);
    free(r);
}

const char *ckpt_h5_reader_path(const ckpt_h5_reader *r) { return r->path; }

int ckpt_h5_has_attr(ckpt_h5_reader *r, const char *name) { return H5Aexists(r->file, name) > 0; }

static xffl_status open_attr(hid_t obj, const char *what, const char *name, hid_t *a, H5T_class_t *cls, size_t *size)
{
    if (H5Aexists(obj, name) <= 0) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no attribute '%s'", what, name);
    *a = H5Aopen(obj, name, H5P_DEFAULT);
    if (*a < 0) return xffl_fail(XFFL_ERR_CORRUPT, "%s: cannot open attribute '%s'", what, name);
    hid_t sp = H5Aget_space(*a);
    hssize_t n = H5Sget_simple_extent_npoints(sp);
    H5Sclose(sp);
    hid_t t = H5Aget_type(*a);
    *cls = H5Tget_class(t);
    *size = H5Tget_size(t);
    H5Tclose(t);
    if (n != 1) {
        H5Aclose(*a);
        return xffl_fail(XFFL_ERR_INVALID, "%s: attribute '%s' is not a scalar", what, name);
    }
    return XFFL_OK;
}

static xffl_status read_str_attr(hid_t obj, const char *what, const char *name, char **value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(obj, what, name, &a, &cls, &size));
    if (cls != H5T_STRING) {
        H5Aclose(a);
        return xffl_fail(XFFL_ERR_INVALID, "%s: attribute '%s' is not a string", what, name);
    }
    hid_t ft = H5Aget_type(a);
    int vlen = H5Tis_variable_str(ft) > 0;
    H5T_cset_t cset = H5Tget_cset(ft);
    H5Tclose(ft);
    xffl_status s = XFFL_OK;
    hid_t mt = H5Tcopy(H5T_C_S1);
    H5Tset_cset(mt, cset); /* HDF5 has no ASCII<->UTF-8 conversion path */
    if (vlen) {
        /* h5py writes variable-length strings; accept them for files it made. */
        H5Tset_size(mt, H5T_VARIABLE);
        char *v = NULL;
        if (H5Aread(a, mt, &v) < 0 || !v) s = xffl_fail(XFFL_ERR_CORRUPT, "%s: reading attribute '%s'", what, name);
        else {
            *value = strdup(v);
            H5free_memory(v);
        }
    } else {
        char *v = calloc(1, size + 1);
        H5Tset_size(mt, size + 1);
        H5Tset_strpad(mt, H5T_STR_NULLTERM);
        if (!v) s = xffl_fail(XFFL_ERR_NOMEM, "attribute %s", name);
        else if (H5Aread(a, mt, v) < 0) {
            free(v);
            s = xffl_fail(XFFL_ERR_CORRUPT, "%s: reading attribute '%s'", what, name);
        } else
            *value = v;
    }
    H5Tclose(mt);
    H5Aclose(a);
    if (s == XFFL_OK && !*value) s = xffl_fail(XFFL_ERR_NOMEM, "attribute %s", name);
    return s;
}

xffl_status ckpt_h5_get_attr_str(ckpt_h5_reader *r, const char *name, char **value)
{
    *value = NULL;
    return read_str_attr(r->file, r->path, name, value);
}

xffl_status ckpt_h5_get_attr_int(ckpt_h5_reader *r, const char *name, int64_t *value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(r->file, r->path, name, &a, &cls, &size));
    herr_t e = cls == H5T_INTEGER ? H5Aread(a, H5T_NATIVE_INT64, value) : -1;
    H5Aclose(a);
    XFFL_RETURN_IF(e < 0, XFFL_ERR_INVALID, "%s: attribute '%s' is not an integer", r->path, name);
    return XFFL_OK;
}

xffl_status ckpt_h5_get_attr_double(ckpt_h5_reader *r, const char *name, double *value)
{
    hid_t a;
    H5T_class_t cls;
    size_t size;
    XFFL_FORWARD(open_attr(r->file, r->path, name, &a, &cls, &size));
    herr_t e = (cls == H5T_FLOAT || cls == H5T_INTEGER) ? H5Aread(a, H5T_NATIVE_DOUBLE, value) : -1;
    H5Aclose(a);
    XFFL_RETURN_IF(e < 0, XFFL_ERR_INVALID, "%s: attribute '%s' is not a number", r->path, name);
    return XFFL_OK;
}

static int exists_path(hid_t file, const char *path)
{
    /* H5Lexists fails (not 0) when an intermediate group is missing: walk it. */
    char buf[512];
    if (strlen(path) >= sizeof buf) return 0;
    strcpy(buf, path);
    for (char *p = strchr(buf, '/');; p = strchr(p + 1, '/')) {
        if (p) *p = 0;
        if (buf[0] && H5Lexists(file, buf, H5P_DEFAULT) <= 0) return 0;
        if (!p) return 1;
        *p = '/';
    }
}

int ckpt_h5_has_dataset(ckpt_h5_reader *r, const char *path)
{
    if (!exists_path(r->file, path)) return 0;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(r->file, path, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0) return 0;
    return oi.type == H5O_TYPE_DATASET;
}

xffl_status ckpt_h5_get_dataset_attr_str(ckpt_h5_reader *r, const char *path, const char *name, char **value)
{
    *value = NULL;
    XFFL_RETURN_IF(!ckpt_h5_has_dataset(r, path), XFFL_ERR_NOT_FOUND, "%s: no dataset %s", r->path, path);
    hid_t ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    XFFL_RETURN_IF(ds < 0, XFFL_ERR_CORRUPT, "%s: dataset %s: cannot open", r->path, path);
    char what[600];
    snprintf(what, sizeof what, "%s: dataset %s", r->path, path);
    xffl_status s = read_str_attr(ds, what, name, value);
    H5Dclose(ds);
    return s;
}

typedef struct {
    char **names;
    int count, cap;
    hid_t group;
    int oom;
} name_list;

static herr_t collect(hid_t g, const char *name, const H5L_info_t *info, void *data)
{
    (void)info;
    name_list *l = data;
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, name, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0 || oi.type != H5O_TYPE_DATASET) return 0;
    if (l->count == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **n = realloc(l->names, (size_t)cap * sizeof *n);
        if (!n) return l->oom = 1, -1;
        l->names = n;
        l->cap = cap;
    }
    if (!(l->names[l->count] = strdup(name))) return l->oom = 1, -1;
    l->count++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void ckpt_h5_names_free(char **names, int count)
{
    for (int i = 0; names && i < count; i++) free(names[i]);
    free(names);
}

xffl_status ckpt_h5_list(ckpt_h5_reader *r, const char *group, char ***names, int *count)
{
    *names = NULL;
    *count = 0;
    XFFL_RETURN_IF(!exists_path(r->file, group), XFFL_ERR_NOT_FOUND, "%s: no group /%s", r->path, group);
    hid_t g = H5Gopen2(r->file, group, H5P_DEFAULT);
    XFFL_RETURN_IF(g < 0, XFFL_ERR_CORRUPT, "%s: /%s is not a readable group", r->path, group);
    name_list l = {0};
    hsize_t idx = 0;
    herr_t e = H5Literate(g, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &l);
    H5Gclose(g);
    if (e < 0) {
        ckpt_h5_names_free(l.names, l.count);
        return xffl_fail(l.oom ? XFFL_ERR_NOMEM : XFFL_ERR_CORRUPT, "%s: listing group /%s", r->path, group);
    }
    if (l.count) qsort(l.names, (size_t)l.count, sizeof *l.names, cmp_str);
    *names = l.names;
    *count = l.count;
    return XFFL_OK;
}

static xffl_status type_dtype(hid_t t, const char *file, const char *path, ckpt_dtype *d)
{
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_FLOAT && sz == 4) *d = CKPT_DT_F32;
    else if (c == H5T_INTEGER && sz == 2 && H5Tget_sign(t) == H5T_SGN_NONE) *d = CKPT_DT_U16;
    else if (c == H5T_INTEGER && sz == 1 && H5Tget_sign(t) == H5T_SGN_2) *d = CKPT_DT_I8;
    else if (c == H5T_INTEGER && sz == 1 && H5Tget_sign(t) == H5T_SGN_NONE) *d = CKPT_DT_U8;
    else return xffl_fail(XFFL_ERR_INVALID, "%s: dataset %s: unsupported element type (class %d, %zu bytes)", file, path, (int)c, sz);
    return XFFL_OK;
}

/* Fills info from an open dataset; layout fields say whether the threaded path fits. */
typedef struct {
    int fast;
    int shuffled;
    int64_t rpc; /* rows per chunk */
} layout;

static xffl_status describe(ckpt_h5_reader *r, hid_t ds, const char *path, ckpt_h5_dataset_info *info, layout *lay)
{
    memset(info, 0, sizeof *info);
    memset(lay, 0, sizeof *lay);
    hid_t t = H5Dget_type(ds);
    xffl_status s = type_dtype(t, r->path, path, &info->dtype);
    int le = H5Tget_order(t) == H5T_ORDER_LE || H5Tget_size(t) == 1;
    H5Tclose(t);
    XFFL_FORWARD(s);
    hid_t sp = H5Dget_space(ds);
    int nd = H5Sget_simple_extent_ndims(sp);
    hsize_t dims[H5S_MAX_RANK];
    if (nd < 1 || nd > CKPT_MAX_DIMS) {
        H5Sclose(sp);
        return xffl_fail(XFFL_ERR_INVALID, "%s: dataset %s: %d dimensions (1..%d)", r->path, path, nd, CKPT_MAX_DIMS);
    }
    H5Sget_simple_extent_dims(sp, dims, NULL);
    H5Sclose(sp);
    info->ndim = nd;
    info->numel = 1;
    for (int i = 0; i < nd; i++) {
        info->shape[i] = (int64_t)dims[i];
        info->numel *= (int64_t)dims[i];
    }
    info->raw_bytes = (uint64_t)info->numel * ckpt_dtype_size(info->dtype);
    info->stored_bytes = H5Dget_storage_size(ds);
    if (H5Aexists(ds, CKPT_DIGEST_ATTR) > 0) {
        char *v = NULL;
        char what[600];
        snprintf(what, sizeof what, "%s: dataset %s", r->path, path);
        XFFL_FORWARD(read_str_attr(ds, what, CKPT_DIGEST_ATTR, &v));
        XFFL_RETURN_IF(strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64, (free(v), XFFL_ERR_CORRUPT),
                       "%s: dataset %s: malformed sha256 attribute", r->path, path);
        memcpy(info->sha256, v, XFFL_SHA256_HEX);
        info->has_sha256 = 1;
        free(v);
    }
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return xffl_fail(XFFL_ERR_CORRUPT, "%s: dataset %s: no creation properties", r->path, path);
    if (le && H5Pget_layout(dcpl) == H5D_CHUNKED) {
        hsize_t c[H5S_MAX_RANK];
        int full = H5Pget_chunk(dcpl, nd, c) == nd;
        for (int i = 1; i < nd && full; i++) full = c[i] == dims[i];
        int nf = H5Pget_nfilters(dcpl);
        unsigned ids[2] = {0, 0};
        for (int i = 0; i < nf && i < 2; i++) {
            unsigned fl, cdv[8];
            size_t ncd = 8;
            ids[i] = (unsigned)H5Pget_filter2(dcpl, (unsigned)i, &fl, &ncd, cdv, 0, NULL, NULL);
        }
        int filt = (nf == 2 && ids[0] == CKPT_SHUFFLE_FILTER_ID && ids[1] == CKPT_ZSTD_FILTER_ID) ||
                   (nf == 1 && ids[0] == CKPT_ZSTD_FILTER_ID);
        if (full && filt && c[0] >= 1) {
            lay->fast = 1;
            lay->shuffled = nf == 2;
            lay->rpc = (int64_t)c[0];
        }
    }
    H5Pclose(dcpl);
    info->fast = lay->fast;
    return XFFL_OK;
}

static xffl_status open_dataset(ckpt_h5_reader *r, const char *path, hid_t *ds)
{
    XFFL_RETURN_IF(!ckpt_h5_has_dataset(r, path), XFFL_ERR_NOT_FOUND, "%s: missing tensor %s", r->path, path);
    *ds = H5Dopen2(r->file, path, H5P_DEFAULT);
    XFFL_RETURN_IF(*ds < 0, XFFL_ERR_CORRUPT, "%s: tensor %s: cannot open dataset", r->path, path);
    return XFFL_OK;
}

xffl_status ckpt_h5_info(ckpt_h5_reader *r, const char *path, ckpt_h5_dataset_info *info)
{
    hid_t ds;
    XFFL_FORWARD(open_dataset(r, path, &ds));
    layout lay;
    xffl_status s = describe(r, ds, path, info, &lay);
    H5Dclose(ds);
    return s;
}

/* Threaded read of a dataset laid out as ckpt_h5_write does: this thread fetches
 * window k+1's raw chunks from HDF5 while tasks decode window k and hash window k-1. */
static xffl_status read_fast(ckpt_h5_reader *r, hid_t ds, const char *path, const ckpt_h5_dataset_info *info,
                             const layout *lay, void *out, uint8_t digest[XFFL_SHA256_LEN])
{
    const size_t el = ckpt_dtype_size(info->dtype);
    const size_t row_bytes = (size_t)(info->raw_bytes / (uint64_t)info->shape[0]);
    const int64_t rpc = lay->rpc, rows = info->shape[0];
    const size_t chunk_bytes = (size_t)rpc * row_bytes, total = (size_t)info->raw_bytes;
    const int64_t nchunks = (rows + rpc - 1) / rpc;
    ckpt_pipeline *pp = &r->pl;
    /* compressed buffers sized for the worst case up front: growing them chunk by
     * chunk costs a page fault per page, which is dear on virtual machines */
    XFFL_FORWARD(ckpt_pipeline_ensure(pp, r->threads, chunk_bytes, 1));
#define p (*pp)
    xffl_sha256_ctx *sha = xffl_sha256_create();
    uint8_t *dst = out;
    const int64_t nwin = (nchunks + p.w - 1) / p.w;
    int shuffled = lay->shuffled;
#pragma omp parallel num_threads(r->threads)
#pragma omp single
    for (int64_t k = -1; k <= nwin; k++) {
        if (p.err != XFFL_OK) break;
#pragma omp taskgroup
        {
            if (k >= 0 && k < nwin) { /* decode window k */
                int64_t c0 = k * p.w, c1 = c0 + p.w < nchunks ? c0 + p.w : nchunks;
                ckpt_slot *set = &p.slots[(k % 2) * p.w];
                for (int64_t c = c0; c < c1; c++) {
#pragma omp task firstprivate(c)
                    {
                        ckpt_slot *sl = &set[c - c0];
                        size_t off = (size_t)c * chunk_bytes;
                        int partial = off + chunk_bytes > total;
                        uint8_t *to = partial ? p.pad : dst + off;
                        xffl_status cs = XFFL_OK;
                        if (sl->zlen == 0) {
                            memset(to, 0, chunk_bytes); /* never written: HDF5 reads fill (zero) */
                        } else {
                            /* Bit i of the mask: filter i was skipped for this chunk (an
                             * optional filter that declined, as h5py adds plugins). */
                            int unzstd = !(sl->mask & (1u << (shuffled ? 1 : 0)));
                            int unshuf = shuffled && !(sl->mask & 1u);
                            const void *plain = sl->z;
                            if (unzstd) {
                                cs = ckpt_zstd_decompress(sl->z, sl->zlen, unshuf ? sl->tmp : to, chunk_bytes);
                                plain = unshuf ? sl->tmp : to;
                            } else if (sl->zlen != chunk_bytes) {
                                cs = xffl_fail(XFFL_ERR_CORRUPT, "unfiltered chunk of %zu bytes, expected %zu", sl->zlen,
                                               chunk_bytes);
                            }
                            if (cs == XFFL_OK && unshuf) ckpt_unshuffle(plain, to, chunk_bytes, el);
                            else if (cs == XFFL_OK && plain != to) memcpy(to, plain, chunk_bytes);
                        }
                        if (cs != XFFL_OK) ckpt_pipeline_err(&p, xffl_wrap(cs, "chunk %lld", (long long)c));
                        else if (partial) memcpy(dst + off, p.pad, total - off);
                    }
                }
            }
            if (k >= 1) { /* hash window k-1, already decoded in place */
                int64_t c0 = (k - 1) * p.w, c1 = c0 + p.w < nchunks ? c0 + p.w : nchunks;
#pragma omp task firstprivate(c0, c1)
                {
                    size_t a = (size_t)c0 * chunk_bytes, b = (size_t)c1 * chunk_bytes;
                    if (b > total) b = total;
                    xffl_sha256_update(sha, dst + a, b - a);
                }
            }
            if (k + 1 < nwin) { /* fetch window k+1 */
                int64_t c0 = (k + 1) * p.w, c1 = c0 + p.w < nchunks ? c0 + p.w : nchunks;
                ckpt_slot *set = &p.slots[((k + 1) % 2) * p.w];
                for (int64_t c = c0; c < c1 && p.err == XFFL_OK; c++) {
                    ckpt_slot *sl = &set[c - c0];
                    hsize_t off[CKPT_MAX_DIMS] = {0}, sz = 0;
                    off[0] = (hsize_t)(c * rpc);
                    sl->zlen = 0;
                    sl->mask = 0;
                    if (H5Dget_chunk_storage_size(ds, off, &sz) < 0) sz = 0;
                    if (sz == 0) continue;
                    if (sz > sl->zcap) {
                        free(sl->z);
                        sl->zcap = (size_t)sz;
                        if (!(sl->z = malloc(sl->zcap))) {
                            sl->zcap = 0;
                            ckpt_pipeline_err(&p, xffl_fail(XFFL_ERR_NOMEM, "chunk %lld (%llu bytes)", (long long)c, (unsigned long long)sz));
                            break;
                        }
                    }
                    if (H5Dread_chunk(ds, H5P_DEFAULT, off, &sl->mask, sl->z) < 0) {
                        ckpt_pipeline_err(&p, xffl_fail(XFFL_ERR_CORRUPT, "chunk %lld: cannot read (truncated file?)", (long long)c));
                        break;
                    }
                    sl->zlen = (size_t)sz;
                }
            }
        }
    }
    xffl_status s = p.err;
    if (s != XFFL_OK) xffl_fail(s, "%s: tensor %s: %s", r->path, path, p.msg);
#undef p
    xffl_sha256_final(sha, digest);
    xffl_sha256_free(sha);
    return s;
}

xffl_status ckpt_h5_read(ckpt_h5_reader *r, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                         void *out, int allow_no_digest, char sha_hex[XFFL_SHA256_HEX])
{
    hid_t ds;
    XFFL_FORWARD(open_dataset(r, path, &ds));
    ckpt_h5_dataset_info info;
    layout lay;
    xffl_status s = describe(r, ds, path, &info, &lay);
    if (s == XFFL_OK && info.dtype != dtype)
        s = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s: dtype %s, expected %s", r->path, path, ckpt_dtype_name(info.dtype),
                      ckpt_dtype_name(dtype));
    if (s == XFFL_OK && ndim > 0) {
        int same = info.ndim == ndim;
        for (int i = 0; same && i < ndim; i++) same = info.shape[i] == shape[i];
        if (!same) {
            char want[128] = "", got[128] = "";
            for (int i = 0; i < ndim; i++)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? "x" : "", (long long)shape[i]);
            for (int i = 0; i < info.ndim; i++)
                snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "x" : "", (long long)info.shape[i]);
            s = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s: shape %s, expected %s", r->path, path, got, want);
        }
    }
    if (s == XFFL_OK && !info.has_sha256 && !allow_no_digest)
        s = xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s: no sha256 attribute", r->path, path);
    uint8_t dg[XFFL_SHA256_LEN];
    if (s == XFFL_OK) {
        if (lay.fast) {
            s = read_fast(r, ds, path, &info, &lay, out, dg);
        } else {
            if (H5Dread(ds, ckpt_h5_mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
                s = xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: cannot read or decode", r->path, path);
            else
                xffl_sha256(out, (size_t)info.raw_bytes, dg);
        }
    }
    H5Dclose(ds);
    if (s != XFFL_OK) return s;
    char hex[XFFL_SHA256_HEX];
    xffl_hex_encode(dg, XFFL_SHA256_LEN, hex);
    if (info.has_sha256 && strcmp(hex, info.sha256) != 0)
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: digest mismatch (sha256 attribute %.12s..., data %.12s...)", r->path,
                         path, info.sha256, hex);
    if (sha_hex) memcpy(sha_hex, hex, XFFL_SHA256_HEX);
    return XFFL_OK;
}
