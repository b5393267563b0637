/* One HDF5 part file, writing: chunks shuffled, compressed and hashed in OpenMP
 * threads and handed to HDF5 with H5Dwrite_chunk. See h5part.h. */
#include "libckpt/h5part.h"

#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <omp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/util.h"
#include "libckpt/h5pipe.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"

struct ckpt_h5_writer {
    hid_t file;
    char *path;
    int level, threads;
    size_t chunk_bytes;
    ckpt_pipeline pl;
    int wb_fd;         /* the file again: early writeback, then the fsync at close (-1: none) */
    uint64_t unsynced; /* bytes handed to HDF5 since the last writeback request */
};

/* Asks the kernel to start writing the dirty pages out, without waiting, once every
 * WRITEBACK_BYTES: the fsync at close then finds most of the file on its way, instead
 * of flushing a whole part after the compression is done. */
#define WRITEBACK_BYTES ((uint64_t)32 << 20)
static void start_writeback(ckpt_h5_writer *w, uint64_t bytes)
{
    w->unsynced += bytes;
    if (w->wb_fd < 0 || w->unsynced < WRITEBACK_BYTES) return;
    (void)sync_file_range(w->wb_fd, 0, 0, SYNC_FILE_RANGE_WRITE); /* a hint: fsync decides */
    w->unsynced = 0;
}

static hid_t make_ocpl(hid_t cls)
{
    hid_t p = H5Pcreate(cls);
    if (p >= 0) H5Pset_obj_track_times(p, 0);
    return p;
}

xffl_status ckpt_h5_writer_create(const char *path, const ckpt_h5_options *opt, ckpt_h5_writer **out)
{
    XFFL_FORWARD(ckpt_h5_setup());
    ckpt_h5_writer *w = calloc(1, sizeof *w);
    if (!w || !(w->path = strdup(path))) {
        free(w);
        return xffl_fail(XFFL_ERR_NOMEM, "writer for %s", path);
    }
    w->level = opt && opt->level ? opt->level : CKPT_ZSTD_DEFAULT_LEVEL;
    w->threads = xffl_threads(opt ? opt->threads : 0);
    w->chunk_bytes = opt && opt->chunk_bytes ? opt->chunk_bytes : CKPT_DEFAULT_CHUNK_BYTES;
    ckpt_pipeline_take(&w->pl);
    hid_t fcpl = make_ocpl(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    /* The HDF5 1.10 file format, pinned (not "latest": the bytes must not change with
     * the library): a one-chunk dataset keeps its chunk's address in its layout
     * message and a many-chunk one gets a fixed array, where the 1.8 format gave
     * every chunked dataset a 2 KB B-tree node, half of a topk delta part's bytes
     * (docs/design.md, "Part files in the HDF5 1.10 format"). */
    if (fapl >= 0 && H5Pset_libver_bounds(fapl, H5F_LIBVER_V110, H5F_LIBVER_V110) < 0) {
        H5Pclose(fapl);
        fapl = -1;
    }
    w->file = fapl >= 0 ? H5Fcreate(path, H5F_ACC_TRUNC, fcpl, fapl) : -1;
    H5Pclose(fcpl);
    if (fapl >= 0) H5Pclose(fapl);
    if (w->file < 0) {
        free(w->path);
        free(w);
        return xffl_fail(XFFL_ERR_IO, "cannot create HDF5 file %s", path);
    }
    w->wb_fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = w;
    return XFFL_OK;
}

void ckpt_h5_writer_abort(ckpt_h5_writer *w)
{
    if (!w) return;
    if (w->file >= 0) H5Fclose(w->file);
    if (w->wb_fd >= 0) close(w->wb_fd);
    ckpt_pipeline_release(&w->pl);
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
        int fd = w->wb_fd >= 0 ? w->wb_fd : open(w->path, O_RDONLY); /* abort closes wb_fd */
        if (fd < 0 || fsync(fd) != 0) s = xffl_fail(XFFL_ERR_IO, "fsync %s: %s", w->path, strerror(errno));
        if (fd >= 0 && fd != w->wb_fd) close(fd);
    }
    ckpt_h5_writer_abort(w);
    return s;
}

static XFFL_MUST_USE xffl_status write_attr(hid_t obj, const char *what, const char *name, hid_t ftype, hid_t mtype, const void *v)
{
    if (H5Aexists(obj, name) > 0) return xffl_fail(XFFL_ERR_INTERNAL, "%s: attribute '%s' written twice", what, name);
    hid_t sp = H5Screate(H5S_SCALAR);
    hid_t a = H5Acreate2(obj, name, ftype, sp, H5P_DEFAULT, H5P_DEFAULT);
    herr_t e = a >= 0 ? H5Awrite(a, mtype, v) : -1;
    if (a >= 0) H5Aclose(a);
    H5Sclose(sp);
    return e < 0 ? xffl_fail(XFFL_ERR_HDF5, "%s: writing attribute '%s'", what, name) : XFFL_OK;
}

static XFFL_MUST_USE xffl_status write_str_attr(hid_t obj, const char *what, const char *name, const char *value)
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
static XFFL_MUST_USE xffl_status ensure_groups(ckpt_h5_writer *w, const char *path)
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

static XFFL_MUST_USE xffl_status check_shape(const char *file, const char *path, int ndim, const int64_t *shape)
{
    XFFL_RETURN_IF(ndim < 1 || ndim > CKPT_MAX_DIMS, XFFL_ERR_INVALID, "%s: dataset %s: %d dimensions (1..%d)", file,
                   path, ndim, CKPT_MAX_DIMS);
    for (int i = 0; i < ndim; i++)
        XFFL_RETURN_IF(shape[i] <= 0, XFFL_ERR_INVALID, "%s: dataset %s: extent %lld in dimension %d", file, path,
                       (long long)shape[i], i);
    return XFFL_OK;
}

/* The chunks of one dataset move through a ring of slots (h5pipe.h): any thread takes
 * the next chunk once its slot is free and shuffles and compresses it there; thread 0,
 * the only one that calls HDF5, hands the chunks over in order as they become ready
 * and compresses while the next one is not; the first other thread hashes the
 * caller's buffer (one sequential pass) before it joins the compression. Nobody waits
 * at a window boundary: the old two-window scheme left a core idle at the end of
 * every window and tensor (18 % of the write's CPU time on 2 cores). */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* broadcast on every change below */
    const uint8_t *src;
    size_t total, chunk_bytes;
    int64_t rpc;
    size_t el;
    int64_t nchunks;
    int nslots;
    int64_t *ready;  /* per slot: the index + 1 of the chunk compressed into it */
    int64_t next;    /* next chunk to compress */
    int64_t written; /* chunks handed to HDF5 */
    int hash_taken;
    int failed;
    uint64_t zsum;   /* compressed bytes written */
} chunk_ring;

enum ring_job { JOB_QUIT, JOB_WRITE, JOB_HASH, JOB_COMPRESS };

/* Under r->mu: what thread tid does next, waiting until there is something. */
static enum ring_job ring_next_job(chunk_ring *r, int tid, int nthreads, int64_t *c)
{
    for (;;) {
        if (r->failed) return JOB_QUIT;
        if (tid == 0 && r->written == r->nchunks) return JOB_QUIT;
        if (tid == 0 && r->ready[r->written % r->nslots] == r->written + 1) {
            *c = r->written;
            return JOB_WRITE;
        }
        if (!r->hash_taken && (tid != 0 || nthreads == 1)) {
            r->hash_taken = 1;
            return JOB_HASH;
        }
        if (r->next < r->nchunks && r->next - r->written < r->nslots) {
            *c = r->next++;
            return JOB_COMPRESS;
        }
        if (tid != 0 && r->next == r->nchunks && r->hash_taken) return JOB_QUIT;
        pthread_cond_wait(&r->cv, &r->mu);
    }
}

static void ring_work(ckpt_h5_writer *w, hid_t ds, chunk_ring *r, xffl_sha256_ctx *sha, int tid, int nthreads)
{
    ckpt_pipeline *p = &w->pl;
    pthread_mutex_lock(&r->mu);
    for (;;) {
        int64_t c = -1;
        enum ring_job job = ring_next_job(r, tid, nthreads, &c);
        pthread_mutex_unlock(&r->mu);
        if (job == JOB_QUIT) return;
        xffl_status s = XFFL_OK;
        ckpt_slot *sl = c >= 0 ? &p->slots[c % r->nslots] : NULL;
        if (job == JOB_HASH) {
            xffl_sha256_update(sha, r->src, r->total);
        } else if (job == JOB_COMPRESS) {
            size_t off = (size_t)c * r->chunk_bytes;
            const void *in = r->src + off;
            if (off + r->chunk_bytes > r->total) { /* partial last chunk: HDF5 stores it padded */
                memset(p->pad[0], 0, r->chunk_bytes);
                memcpy(p->pad[0], in, r->total - off);
                in = p->pad[0];
            }
            ckpt_shuffle(in, sl->tmp, r->chunk_bytes, r->el);
            s = ckpt_zstd_compress(sl->tmp, r->chunk_bytes, sl->z, sl->zcap, w->level, &sl->zlen);
        } else {
            hsize_t off[CKPT_MAX_DIMS] = {0};
            off[0] = (hsize_t)(c * r->rpc);
            if (H5Dwrite_chunk(ds, H5P_DEFAULT, 0, off, sl->zlen, sl->z) < 0)
                s = xffl_fail(XFFL_ERR_HDF5, "writing chunk %lld", (long long)c);
            start_writeback(w, sl->zlen);
        }
        if (s != XFFL_OK) ckpt_pipeline_err(p, s);
        pthread_mutex_lock(&r->mu);
        if (s != XFFL_OK) r->failed = 1;
        else if (job == JOB_COMPRESS) r->ready[c % r->nslots] = c + 1;
        else if (job == JOB_WRITE) {
            r->zsum += sl->zlen;
            r->written++;
        }
        pthread_cond_broadcast(&r->cv);
    }
}

xffl_status ckpt_h5_write(ckpt_h5_writer *w, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                          const void *data, char sha_hex[XFFL_SHA256_HEX], uint64_t *stored)
{
    XFFL_FORWARD(check_shape(w->path, path, ndim, shape));
    /* Fails, not 0, while the parent group is missing: not an error worth a stack at --verbose. */
    htri_t there = -1;
    H5E_BEGIN_TRY { there = H5Lexists(w->file, path, H5P_DEFAULT); } H5E_END_TRY;
    XFFL_RETURN_IF(there > 0, XFFL_ERR_INTERNAL, "%s: dataset %s written twice", w->path, path);
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
    hid_t ds = e >= 0 ? H5Dcreate2(w->file, path, ckpt_h5_file_type(dtype), sp, H5P_DEFAULT, dcpl, H5P_DEFAULT) : -1;
    H5Sclose(sp);
    if (dcpl >= 0) H5Pclose(dcpl);
    if (ds < 0) return xffl_fail(XFFL_ERR_HDF5, "%s: creating dataset %s", w->path, path);

    ckpt_pipeline *p = &w->pl;
    xffl_status s = ckpt_pipeline_ensure(p, w->threads, chunk_bytes, 1);
    if (s != XFFL_OK) {
        H5Dclose(ds);
        return xffl_wrap(s, "%s: dataset %s", w->path, path);
    }
    xffl_sha256_ctx *sha = xffl_sha256_create();
    int64_t *ready = calloc((size_t)p->nslots, sizeof *ready);
    if (!sha || !ready) {
        xffl_sha256_free(sha);
        free(ready);
        H5Dclose(ds);
        return xffl_fail(XFFL_ERR_NOMEM, "%s: dataset %s: chunk ring", w->path, path);
    }
    chunk_ring r = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER, .src = data, .total = total,
                    .chunk_bytes = chunk_bytes, .rpc = rpc, .el = el, .nchunks = nchunks, .nslots = p->nslots,
                    .ready = ready};
#pragma omp parallel num_threads(w->threads)
    ring_work(w, ds, &r, sha, omp_get_thread_num(), omp_get_num_threads());
    pthread_mutex_destroy(&r.mu);
    pthread_cond_destroy(&r.cv);
    free(ready);
    const uint64_t zsum = r.zsum;
    s = p->err;
    if (s != XFFL_OK) xffl_fail(s, "%s: dataset %s: %s", w->path, path, p->msg);
    uint8_t dg[XFFL_SHA256_LEN];
    char hex[XFFL_SHA256_HEX];
    xffl_sha256_final(sha, dg);
    xffl_sha256_free(sha);
    xffl_hex_encode(dg, XFFL_SHA256_LEN, hex);
    if (s == XFFL_OK) s = write_str_attr(ds, path, CKPT_DIGEST_ATTR, hex);
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
