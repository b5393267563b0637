/* One HDF5 part file: writer (threaded shuffle+zstd+hash, H5Dwrite_chunk) and
 * reader (H5Dread_chunk, threaded decode, digest check). See h5part.h. */
#include "libckpt/h5part.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libckpt/zstd_filter.h"

/* 1 MiB: large enough that per-chunk overhead vanishes, small enough that the few
 * chunk buffers in flight stay cheap to fault in, and h5py's default 1 MiB chunk
 * cache holds one. */
#define DEFAULT_CHUNK_BYTES ((size_t)1 << 20)
#define DIGEST_ATTR "sha256"

static int h5_verbose;

static void h5_setup(void)
{
    if (!h5_verbose) H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    ckpt_zstd_register();
}

void ckpt_h5_set_verbose(int verbose)
{
    h5_verbose = verbose;
    if (verbose) H5Eset_auto2(H5E_DEFAULT, (H5E_auto2_t)H5Eprint2, stderr);
    h5_setup();
}

const char *ckpt_dtype_name(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return "float32";
    case CKPT_DT_U16: return "uint16";
    case CKPT_DT_I8: return "int8";
    case CKPT_DT_U8: return "uint8";
    }
    return "?";
}

size_t ckpt_dtype_size(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return 4;
    case CKPT_DT_U16: return 2;
    case CKPT_DT_I8:
    case CKPT_DT_U8: return 1;
    }
    return 0;
}

xffl_status ckpt_dtype_parse(const char *name, ckpt_dtype *out)
{
    for (int d = CKPT_DT_F32; d <= CKPT_DT_U8; d++)
        if (strcmp(name, ckpt_dtype_name((ckpt_dtype)d)) == 0) {
            *out = (ckpt_dtype)d;
            return XFFL_OK;
        }
    return xffl_fail(XFFL_ERR_INVALID, "unknown dtype '%s' (known: float32, uint16, int8, uint8)", name);
}

static hid_t file_type(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return H5T_IEEE_F32LE;
    case CKPT_DT_U16: return H5T_STD_U16LE;
    case CKPT_DT_I8: return H5T_STD_I8LE;
    case CKPT_DT_U8: return H5T_STD_U8LE;
    }
    return -1;
}

static hid_t mem_type(ckpt_dtype d)
{
    switch (d) {
    case CKPT_DT_F32: return H5T_NATIVE_FLOAT;
    case CKPT_DT_U16: return H5T_NATIVE_UINT16;
    case CKPT_DT_I8: return H5T_NATIVE_INT8;
    case CKPT_DT_U8: return H5T_NATIVE_UINT8;
    }
    return -1;
}

static int opt_threads(int t) { return t > 0 ? t : omp_get_max_threads(); }

/* ---- chunk pipeline shared by writer and reader ---- */

typedef struct {
    void *z;       /* compressed bytes */
    size_t zcap;
    size_t zlen;
    void *tmp;     /* one full chunk, shuffled */
    uint32_t mask; /* read: filter mask HDF5 reported */
} slot;

typedef struct {
    int nslots;      /* 2 windows of w slots */
    int w;
    slot *slots;
    void *pad;       /* one full chunk: the partial last chunk, zero-padded */
    size_t cap;      /* chunk bytes the buffers hold */
    int zbuf;
    xffl_status err;
    char msg[XFFL_ERRMSG_MAX];
} pipeline;

static void pipe_err(pipeline *p, xffl_status s)
{
#pragma omp critical(ckpt_h5_err)
    if (p->err == XFFL_OK) {
        p->err = s;
        snprintf(p->msg, sizeof p->msg, "%s", xffl_errmsg());
    }
}

static void pipeline_free(pipeline *p)
{
    if (p->slots)
        for (int i = 0; i < p->nslots; i++) {
            free(p->slots[i].z);
            free(p->slots[i].tmp);
        }
    free(p->slots);
    free(p->pad);
    memset(p, 0, sizeof *p);
}

/* One spare set of buffers for the process: a writer or reader takes it when it
 * opens and gives it back when it closes, so a command that opens many part files
 * faults its buffers in once. */
static pipeline spare;
static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;

static void pipeline_take(pipeline *p)
{
    pthread_mutex_lock(&spare_lock);
    *p = spare;
    memset(&spare, 0, sizeof spare);
    pthread_mutex_unlock(&spare_lock);
}

static void pipeline_release(pipeline *p)
{
    pthread_mutex_lock(&spare_lock);
    if (!spare.slots || (p->slots && p->cap > spare.cap)) {
        pipeline old = spare;
        spare = *p;
        *p = old;
    }
    pthread_mutex_unlock(&spare_lock);
    pipeline_free(p);
}

/* Buffers live as long as the writer/reader: allocating 2 windows of 4 MiB chunks per
 * dataset made page faults the largest cost. Grown, never shrunk. */
static xffl_status pipeline_ensure(pipeline *p, int threads, size_t chunk_bytes, int zbuf)
{
    p->err = XFFL_OK;
    p->msg[0] = 0;
    int w = 2 * threads < 2 ? 2 : 2 * threads;
    if (p->slots && p->w == w && p->cap >= chunk_bytes && p->zbuf >= zbuf) return XFFL_OK;
    size_t cap = chunk_bytes > p->cap ? chunk_bytes : p->cap;
    pipeline_free(p);
    p->w = w;
    p->nslots = 2 * w;
    p->cap = cap;
    p->zbuf = zbuf;
    p->slots = calloc((size_t)p->nslots, sizeof *p->slots);
    p->pad = malloc(cap);
    if (!p->slots || !p->pad) goto nomem;
    for (int i = 0; i < p->nslots; i++) {
        p->slots[i].zcap = zbuf ? ckpt_zstd_bound(cap) : 0;
        p->slots[i].tmp = malloc(cap);
        if (zbuf) p->slots[i].z = malloc(p->slots[i].zcap);
        if (!p->slots[i].tmp || (zbuf && !p->slots[i].z)) goto nomem;
    }
    return XFFL_OK;
nomem:
    pipeline_free(p);
    return xffl_fail(XFFL_ERR_NOMEM, "chunk buffers (%zu bytes each)", cap);
}

/* ---- writer ---- */

struct ckpt_h5_writer {
    hid_t file;
    char *path;
    int level, threads;
    size_t chunk_bytes;
    pipeline pl;
};

static hid_t make_ocpl(hid_t cls)
{
    hid_t p = H5Pcreate(cls);
    if (p >= 0) H5Pset_obj_track_times(p, 0);
    return p;
}

xffl_status ckpt_h5_writer_create(const char *path, const ckpt_h5_options *opt, ckpt_h5_writer **out)
{
    h5_setup();
    ckpt_h5_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return xffl_fail(XFFL_ERR_NOMEM, "writer for %s", path);
    }
    w->level = opt && opt->level ? opt->level : CKPT_ZSTD_DEFAULT_LEVEL;
    w->threads = opt_threads(opt ? opt->threads : 0);
    w->chunk_bytes = opt && opt->chunk_bytes ? opt->chunk_bytes : DEFAULT_CHUNK_BYTES;
    pipeline_take(&w->pl);
    hid_t fcpl = make_ocpl(H5P_FILE_CREATE);
    w->file = H5Fcreate(path, H5F_ACC_TRUNC, fcpl, H5P_DEFAULT);
    H5Pclose(fcpl);
    if (w->file < 0) {
        free(w->path);
        free(w);
        return xffl_fail(XFFL_ERR_IO, "cannot create HDF5 file %s", path);
    }
    *out = w;
    return XFFL_OK;
}

void ckpt_h5_writer_abort(ckpt_h5_writer *w)
{
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    pipeline_release(&w->pl);
    free(w->path);
    free(w);
}

xffl_status ckpt_h5_writer_close(ckpt_h5_writer *w)
{
    if (!w) return XFFL_OK;
    xffl_status s = XFFL_OK;
    herr_t e = H5Fclose(w->file);
    w->file = -1;
    if (e < 0) s = xffl_fail(XFFL_ERR_IO, "closing HDF5 file %s", w->path);
    if (s == XFFL_OK) {
        int fd = open(w->path, O_RDONLY);
        if (fd < 0 || fsync(fd) != 0) s = xffl_fail(XFFL_ERR_IO, "fsync %s: %s", w->path, strerror(errno));
        if (fd >= 0) close(fd);
    }
    ckpt_h5_writer_abort(w);
    return s;
}

static xffl_status write_attr(hid_t obj, const char *what, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    if (H5Aexists(obj, name) > 0) return xffl_fail(XFFL_ERR_INTERNAL, "%s: attribute '%s' written twice", what, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, mtype, v) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? xffl_fail(XFFL_ERR_HDF5, "%s: writing attribute '%s'", what, name) : XFFL_OK;
}

static xffl_status write_str_attr(hid_t obj, const char *what, const char *name, const char *value)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    H5Tset_size(t, strlen(value) ? strlen(value) : 1);
    H5Tset_strpad(t, H5T_STR_NULLPAD);
    H5Tset_cset(t, H5T_CSET_UTF8);
    char one = 0;
    xffl_status s = write_attr(obj, what, name, t, t, *value ? (const void *)value : &one);
    H5Tclose(t);
    return s;
}

xffl_status ckpt_h5_attr_str(ckpt_h5_writer *w, const char *name, const char *value)
{
    return write_str_attr(w->file, w->path, name, value);
}

xffl_status ckpt_h5_attr_int(ckpt_h5_writer *w, const char *name, int64_t value)
{
    return write_attr(w->file, w->path, name, H5T_STD_I64LE, H5T_NATIVE_INT64, &value);
}

xffl_status ckpt_h5_attr_double(ckpt_h5_writer *w, const char *name, double value)
{
    return write_attr(w->file, w->path, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, &value);
}

/* Creates each missing group on the way to path's last component, without times
 * (lcpl's create-intermediate would give them default, timestamped, properties). */
static xffl_status ensure_groups(ckpt_h5_writer *w, const char *path)
{
    char buf[512];
    if (strlen(path) >= sizeof buf) return xffl_fail(XFFL_ERR_INVALID, "%s: dataset path too long: %s", w->path, path);
    strcpy(buf, path);
    for (char *p = strchr(buf, '/'); p; p = strchr(p + 1, '/')) {
        *p = 0;
        if (buf[0] && H5Lexists(w->file, buf, H5P_DEFAULT) <= 0) {
            hid_t gcpl = make_ocpl(H5P_GROUP_CREATE);
            hid_t g = H5Gcreate2(w->file, buf, H5P_DEFAULT, gcpl, H5P_DEFAULT);
            H5Pclose(gcpl);
            if (g < 0) return xffl_fail(XFFL_ERR_HDF5, "%s: creating group /%s", w->path, buf);
            H5Gclose(g);
        }
        *p = '/';
    }
    return XFFL_OK;
}

static int64_t rows_per_chunk(int64_t rows, size_t row_bytes, size_t chunk_bytes)
{
    int64_t r = (int64_t)(chunk_bytes / (row_bytes ? row_bytes : 1));
    if (r < 1) r = 1;
    if (r > rows) r = rows;
    return r;
}

static xffl_status check_shape(const char *file, const char *path, int ndim, const int64_t *shape)
{
    XFFL_RETURN_IF(ndim < 1 || ndim > CKPT_MAX_DIMS, XFFL_ERR_INVALID, "%s: dataset %s: %d dimensions (1..%d)", file,
                   path, ndim, CKPT_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        XFFL_RETURN_IF(shape[i] <= 0, XFFL_ERR_INVALID, "%s: dataset %s: extent %lld in dimension %d", file, path,
                       (long long)shape[i], i);
    return XFFL_OK;
}

xffl_status ckpt_h5_write(ckpt_h5_writer *w, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                          const void *data, char sha_hex[XFFL_SHA256_HEX], uint64_t *stored)
{
    XFFL_FORWARD(check_shape(w->path, path, ndim, shape));
    XFFL_RETURN_IF(H5Lexists(w->file, path, H5P_DEFAULT) > 0, XFFL_ERR_INTERNAL, "%s: dataset %s written twice",
                   w->path, path);
    XFFL_FORWARD(ensure_groups(w, path));
    const size_t el = ckpt_dtype_size(dtype);
    size_t row_bytes = el;
    for (int i = 1; i < ndim; i++) row_bytes *= (size_t)shape[i];
    const int64_t rows = shape[0];
    const int64_t rpc = rows_per_chunk(rows, row_bytes, w->chunk_bytes);
    const size_t chunk_bytes = (size_t)rpc * row_bytes;
    const int64_t nchunks = (rows + rpc - 1) / rpc;
    const size_t total = (size_t)rows * row_bytes;

    hsize_t dims[CKPT_MAX_DIMS], cdims[CKPT_MAX_DIMS];
    for (int i = 0; i < ndim; i++) dims[i] = cdims[i] = (hsize_t)shape[i];
    cdims[0] = (hsize_t)rpc;
    hid_t dcpl = make_ocpl(H5P_DATASET_CREATE);
    unsigned level = (unsigned)w->level;
    herr_t e = dcpl < 0 ? -1 : 0;
    if (e >= 0) e = H5Pset_chunk(dcpl, ndim, cdims);
    if (e >= 0) e = H5Pset_shuffle(dcpl);
    if (e >= 0) e = H5Pset_filter(dcpl, CKPT_ZSTD_FILTER_ID, H5Z_FLAG_MANDATORY, 1, &level);
    if (e >= 0) e = H5Pset_fill_time(dcpl, H5D_FILL_TIME_NEVER);
    hid_t sp = H5Screate_simple(ndim, dims, NULL);
    hid_t ds = e >= 0 ? H5Dcreate2(w->file, path, file_type(dtype), sp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ds < 0) return xffl_fail(XFFL_ERR_HDF5, "%s: creating dataset %s", w->path, path);

    pipeline *pp = &w->pl;
    xffl_status s = pipeline_ensure(pp, w->threads, chunk_bytes, 1);
#define p (*pp)
    if (s != XFFL_OK) {
        H5Dclose(ds);
        return xffl_wrap(s, "%s: dataset %s", w->path, path);
    }
    xffl_sha256_ctx *sha = xffl_sha256_create();
    uint64_t zsum = 0;
    const uint8_t *src = data;
    const int64_t nwin = (nchunks + p.w - 1) / p.w;
    /* Window k is compressed (and hashed) by tasks while this thread writes window
     * k-1 through HDF5: the I/O overlaps the CPU work and HDF5 sees one thread. */
#pragma omp parallel num_threads(w->threads)
#pragma omp single
    for (int64_t k = 0; k <= nwin; k++) {
        if (p.err != XFFL_OK) break;
#pragma omp taskgroup
        {
            if (k < nwin) {
                int64_t c0 = k * p.w, c1 = c0 + p.w < nchunks ? c0 + p.w : nchunks;
                slot *set = &p.slots[(k % 2) * p.w];
#pragma omp task firstprivate(c0, c1)
                {
                    size_t a = (size_t)c0 * chunk_bytes, b = (size_t)c1 * chunk_bytes;
                    if (b > total) b = total;
                    xffl_sha256_update(sha, src + a, b - a);
                }
                for (int64_t c = c0; c < c1; c++) {
#pragma omp task firstprivate(c)
                    {
                        slot *sl = &set[c - c0];
                        size_t off = (size_t)c * chunk_bytes;
                        const void *in = src + off;
                        if (off + chunk_bytes > total) { /* partial last chunk: HDF5 stores it padded */
                            memset(p.pad, 0, chunk_bytes);
                            memcpy(p.pad, in, total - off);
                            in = p.pad;
                        }
                        ckpt_shuffle(in, sl->tmp, chunk_bytes, el);
                        xffl_status cs = ckpt_zstd_compress(sl->tmp, chunk_bytes, sl->z, sl->zcap, w->level, &sl->zlen);
                        if (cs != XFFL_OK) pipe_err(&p, cs);
                    }
                }
            }
            if (k > 0) {
                int64_t c0 = (k - 1) * p.w, c1 = c0 + p.w < nchunks ? c0 + p.w : nchunks;
                slot *set = &p.slots[((k - 1) % 2) * p.w];
                for (int64_t c = c0; c < c1 && p.err == XFFL_OK; c++) {
                    hsize_t off[CKPT_MAX_DIMS] = {0};
                    off[0] = (hsize_t)(c * rpc);
                    if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off, set[c - c0].zlen, set[c - c0].z) < 0)
                        pipe_err(&p, xffl_fail(XFFL_ERR_HDF5, "writing chunk %lld", (long long)c));
                    zsum += set[c - c0].zlen;
                }
            }
        }
    }
    s = p.err;
    if (s != XFFL_OK) xffl_fail(s, "%s: dataset %s: %s", w->path, path, p.msg);
#undef p
    uint8_t dg[XFFL_SHA256_LEN];
    char hex[XFFL_SHA256_HEX];
    xffl_sha256_final(sha, dg);
    xffl_sha256_free(sha);
    xffl_hex_encode(dg, XFFL_SHA256_LEN, hex);
    if (s == XFFL_OK) s = write_str_attr(ds, path, DIGEST_ATTR, hex);
    if (H5Dclose(ds) < 0 && s == XFFL_OK) s = xffl_fail(XFFL_ERR_HDF5, "%s: closing dataset %s", w->path, path);
    if (s != XFFL_OK) return s;
    if (sha_hex) memcpy(sha_hex, hex, XFFL_SHA256_HEX);
    if (stored) *stored = zsum;
    return XFFL_OK;
}

xffl_status ckpt_h5_dataset_attr_str(ckpt_h5_writer *w, const char *path, const char *name, const char *value)
{
    hid_t ds = H5Oopen(w->file, path, H5P_DEFAULT);
    if (ds < 0) return xffl_fail(XFFL_ERR_NOT_FOUND, "%s: no dataset %s", w->path, path);
    char what[600];
    snprintf(what, sizeof what, "%s: %s", w->path, path);
    xffl_status s = write_str_attr(ds, what, name, value);
    H5Oclose(ds);
    return s;
}

/* ---- reader ---- */

struct ckpt_h5_reader {
    hid_t file;
    char *path;
    int threads;
    pipeline pl;
};

xffl_status ckpt_h5_reader_open(const char *path, const ckpt_h5_options *opt, ckpt_h5_reader **out)
{
    h5_setup();
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
    r->threads = opt_threads(opt ? opt->threads : 0);
    pipeline_take(&r->pl);
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
    pipeline_release(&r->pl);
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
    if (H5Aexists(ds, DIGEST_ATTR) > 0) {
        char *v = NULL;
        char what[600];
        snprintf(what, sizeof what, "%s: dataset %s", r->path, path);
        XFFL_FORWARD(read_str_attr(ds, what, DIGEST_ATTR, &v));
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
    pipeline *pp = &r->pl;
    /* compressed buffers sized for the worst case up front: growing them chunk by
     * chunk costs a page fault per page, which is dear on virtual machines */
    XFFL_FORWARD(pipeline_ensure(pp, r->threads, chunk_bytes, 1));
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
                slot *set = &p.slots[(k % 2) * p.w];
                for (int64_t c = c0; c < c1; c++) {
#pragma omp task firstprivate(c)
                    {
                        slot *sl = &set[c - c0];
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
                        if (cs != XFFL_OK) pipe_err(&p, xffl_wrap(cs, "chunk %lld", (long long)c));
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
                slot *set = &p.slots[((k + 1) % 2) * p.w];
                for (int64_t c = c0; c < c1 && p.err == XFFL_OK; c++) {
                    slot *sl = &set[c - c0];
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
                            pipe_err(&p, xffl_fail(XFFL_ERR_NOMEM, "chunk %lld (%llu bytes)", (long long)c, (unsigned long long)sz));
                            break;
                        }
                    }
                    if (H5Dread_chunk(ds, H5P_DEFAULT, off, &sl->mask, sl->z) < 0) {
                        pipe_err(&p, xffl_fail(XFFL_ERR_CORRUPT, "chunk %lld: cannot read (truncated file?)", (long long)c));
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
            if (H5Dread(ds, mem_type(dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, out) < 0)
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
