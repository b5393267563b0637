/* Reading whole datasets of a part file, every digest checked. See h5part.h.
 *
 * Datasets laid out as ckpt_h5_write does take the threaded path: this thread (the
 * only one calling HDF5) fills one of two sets of slots (each chunk's address for an
 * O_DIRECT read by the decoding task, or its bytes through H5Dread_chunk) while OpenMP
 * tasks decode (zstd, unshuffle) the other set straight into
 * the caller's buffer, and a hash task per decoded window feeds the dataset's
 * SHA-256. A SHA-256 is one sequential stream per dataset and the costliest step
 * (about 1.5 GB/s a core), so a batch (ckpt_h5_read_many) lets the hash of one
 * dataset run beside the next one's fetch and decode instead of waiting for it.
 * Other layouts go through HDF5's own pipeline (H5Dread), hashed the same way. */
#include "libckpt/h5part.h"

#include <errno.h>
#include <hdf5.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/util.h"
#include "libckpt/h5part_read.h"
#include "libckpt/shuffle.h"
#include "libckpt/zstd_filter.h"

static XFFL_MUST_USE xffl_status type_dtype(hid_t t, const char *file, const char *path, ckpt_dtype *d)
{
    H5T_class_t c = H5Tget_class(t);
    size_t sz = H5Tget_size(t);
    if (c == H5T_FLOAT && sz == 4) *d = CKPT_DT_F32;
    else if (c == H5T_INTEGER && sz == 2 && H5Tget_sign(t) == H5T_SGN_NONE) *d = CKPT_DT_U16;
    else if (c == H5T_INTEGER && sz == 1 && H5Tget_sign(t) == H5T_SGN_2) *d = CKPT_DT_I8;
    else if (c == H5T_INTEGER && sz == 1 && H5Tget_sign(t) == H5T_SGN_NONE) *d = CKPT_DT_U8;
    else if (c == H5T_INTEGER && sz == 4 && H5Tget_sign(t) == H5T_SGN_NONE) *d = CKPT_DT_U32;
    else return xffl_fail(XFFL_ERR_INVALID, "%s: dataset %s: unsupported element type (class %d, %zu bytes)", file, path, (int)c, sz);
    return XFFL_OK;
}

/* What HDF5 says of the dataset's storage, for ckpt_h5_layout_check: nothing here
 * reads a byte of its values. */
static void fill_layout(ckpt_h5_reader *r, hid_t ds, hid_t dcpl, int nd, const hsize_t *dims, const hsize_t *maxdims,
                        ckpt_dtype dtype, ckpt_h5_layout *L)
{
    memset(L, 0, sizeof *L);
    L->ndim = nd;
    L->elem_bytes = ckpt_dtype_size(dtype);
    for (int i = 0; i < nd; i++) {
        L->dims[i] = dims[i];
        L->maxdims[i] = maxdims[i] == H5S_UNLIMITED ? UINT64_MAX : maxdims[i];
    }
    H5D_layout_t lay = H5Pget_layout(dcpl);
    L->kind = lay == H5D_CHUNKED ? CKPT_H5_CHUNKED : lay == H5D_CONTIGUOUS ? CKPT_H5_CONTIGUOUS
            : lay == H5D_COMPACT ? CKPT_H5_COMPACT : CKPT_H5_OTHER;
    L->nfilters = H5Pget_nfilters(dcpl);
    for (int i = 0; i < L->nfilters && i < CKPT_H5_MAX_FILTERS; i++) {
        unsigned fl, cdv[8];
        size_t ncd = 8;
        L->filters[i] = (int)H5Pget_filter2(dcpl, (unsigned)i, &fl, &ncd, cdv, 0, NULL, NULL);
    }
    if (L->kind == CKPT_H5_CHUNKED) {
        hsize_t c[H5S_MAX_RANK];
        L->chunk_ndim = H5Pget_chunk(dcpl, H5S_MAX_RANK, c);
        for (int i = 0; i < L->chunk_ndim && i < CKPT_MAX_DIMS; i++) L->chunk[i] = c[i];
    } else if (L->kind == CKPT_H5_CONTIGUOUS) {
        L->stored = H5Dget_storage_size(ds);
        haddr_t at = H5Dget_offset(ds);
        L->offset = at == HADDR_UNDEF ? UINT64_MAX : (uint64_t)at;
        struct stat sb;
        if (r->buf_fd >= 0 && fstat(r->buf_fd, &sb) == 0) L->file_size = (uint64_t)sb.st_size;
    }
}

/* Fills info from an open dataset; layout fields say whether the threaded path fits. */
typedef struct {
    int fast;
    int shuffled;
    int64_t rpc; /* rows per chunk */
} layout;

static XFFL_MUST_USE xffl_status describe(ckpt_h5_reader *r, hid_t ds, const char *path, ckpt_h5_dataset_info *info, layout *lay)
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
    hsize_t dims[H5S_MAX_RANK], maxdims[H5S_MAX_RANK];
    if (nd < 1 || nd > CKPT_MAX_DIMS) {
        H5Sclose(sp);
        return xffl_fail(XFFL_ERR_INVALID, "%s: dataset %s: %d dimensions (1..%d)", r->path, path, nd, CKPT_MAX_DIMS);
    }
    H5Sget_simple_extent_dims(sp, dims, maxdims);
    H5Sclose(sp);
    hid_t dcpl = H5Dget_create_plist(ds);
    if (dcpl < 0) return xffl_fail(XFFL_ERR_CORRUPT, "%s: dataset %s: no creation properties", r->path, path);
    ckpt_h5_layout L;
    fill_layout(r, ds, dcpl, nd, dims, maxdims, info->dtype, &L);
    H5Pclose(dcpl);
    XFFL_FORWARD(ckpt_h5_layout_check(&L, r->path, path));
    info->ndim = nd;
    for (int i = 0; i < nd; i++) info->shape[i] = (int64_t)dims[i];
    info->numel = L.numel;
    info->raw_bytes = L.raw_bytes;
    info->stored_bytes = H5Dget_storage_size(ds);
    if (H5Aexists(ds, CKPT_DIGEST_ATTR) > 0) {
        char *v = NULL;
        char what[600];
        snprintf(what, sizeof what, "%s: dataset %s", r->path, path);
        XFFL_FORWARD(ckpt_h5_read_str_attr(ds, what, CKPT_DIGEST_ATTR, &v));
        XFFL_RETURN_IF(strlen(v) != 64 || strspn(v, "0123456789abcdef") != 64, (free(v), XFFL_ERR_CORRUPT),
                       "%s: dataset %s: malformed sha256 attribute", r->path, path);
        memcpy(info->sha256, v, XFFL_SHA256_HEX);
        info->has_sha256 = 1;
        free(v);
    }
    if (le && L.fast) {
        lay->fast = 1;
        lay->shuffled = L.nfilters == 2;
        lay->rpc = (int64_t)L.chunk[0];
    }
    info->fast = lay->fast;
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status open_dataset(ckpt_h5_reader *r, const char *path, hid_t *ds)
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


/* One dataset of a batch: its request, open dataset and running digest. */
typedef struct {
    const ckpt_h5_request *q;
    hid_t ds;
    ckpt_h5_dataset_info info;
    layout lay;
    xffl_sha256_ctx *sha;
    size_t chunk_bytes; /* uncompressed bytes of one full chunk (fast layout) */
    int64_t nchunks;
    /* The digest runs over out[0, hashed) and may go on to out[0, ready): bytes decoded
     * in order; at most one hash task per dataset (hashing) at a time. Guarded by the
     * critical section "ckpt_h5_hash". */
    size_t hashed, ready;
    int hashing;
} job;

/* Up to one slot set of consecutive chunks [c0, c1) of one dataset. */
typedef struct {
    job *j;
    int64_t c0, c1;
} window;

static void shape_text(char *buf, size_t cap, int ndim, const int64_t *shape)
{
    buf[0] = 0;
    for (int i = 0; i < ndim; i++)
        snprintf(buf + strlen(buf), cap - strlen(buf), "%s%lld", i ? "x" : "", (long long)shape[i]);
}

/* Opens the dataset and checks it against the request (dtype, shape, digest present). */
static XFFL_MUST_USE xffl_status prepare(ckpt_h5_reader *r, const ckpt_h5_request *q, job *j)
{
    j->q = q;
    XFFL_FORWARD(open_dataset(r, q->path, &j->ds));
    XFFL_FORWARD(describe(r, j->ds, q->path, &j->info, &j->lay));
    const ckpt_h5_dataset_info *in = &j->info;
    XFFL_RETURN_IF(in->dtype != q->dtype, XFFL_ERR_INVALID, "%s: tensor %s: dtype %s, expected %s", r->path, q->path,
                   ckpt_dtype_name(in->dtype), ckpt_dtype_name(q->dtype));
    if (q->ndim > 0) {
        int same = in->ndim == q->ndim;
        for (int i = 0; same && i < q->ndim; i++) same = in->shape[i] == q->shape[i];
        if (!same) {
            char want[128], got[128];
            shape_text(want, sizeof want, q->ndim, q->shape);
            shape_text(got, sizeof got, in->ndim, in->shape);
            return xffl_fail(XFFL_ERR_INVALID, "%s: tensor %s: shape %s, expected %s", r->path, q->path, got, want);
        }
    }
    XFFL_RETURN_IF(!in->has_sha256 && !q->allow_no_digest, XFFL_ERR_INVALID, "%s: tensor %s: no sha256 attribute",
                   r->path, q->path);
    j->sha = xffl_sha256_create();
    XFFL_RETURN_IF(!j->sha, XFFL_ERR_NOMEM, "%s: tensor %s: digest context", r->path, q->path);
    if (j->lay.fast) {
        const size_t row_bytes = (size_t)(in->raw_bytes / (uint64_t)in->shape[0]);
        j->chunk_bytes = (size_t)j->lay.rpc * row_bytes;
        j->nchunks = (in->shape[0] + j->lay.rpc - 1) / j->lay.rpc;
    }
    return XFFL_OK;
}

/* Reads a chunk fetch_window only located: the whole pages around it, O_DIRECT; through
 * the page cache where the file system wants another alignment (EINVAL). */
static XFFL_MUST_USE xffl_status read_direct(ckpt_h5_reader *r, ckpt_slot *sl)
{
    uint64_t start = sl->addr & ~(uint64_t)(CKPT_DIO_ALIGN - 1);
    size_t lead = (size_t)(sl->addr - start), want = lead + sl->zlen;
    size_t len = (want + CKPT_DIO_ALIGN - 1) & ~(size_t)(CKPT_DIO_ALIGN - 1), got = 0;
    int fd = r->dio_fd;
    while (got < want) {
        ssize_t n = pread(fd, (uint8_t *)sl->z + got, len - got, (off_t)(start + got));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EINVAL && fd == r->dio_fd) {
            fd = r->buf_fd;
            start = sl->addr, lead = 0, want = len = sl->zlen, got = 0;
            continue;
        }
        XFFL_RETURN_IF(n < 0, XFFL_ERR_IO, "read: %s", strerror(errno));
        if (n == 0) break; /* end of file before the chunk's end: truncated */
        got += (size_t)n;
    }
    XFFL_RETURN_IF(got < want, XFFL_ERR_CORRUPT, "cannot read (truncated file?)");
    sl->zoff = lead;
    return XFFL_OK;
}

/* Decodes chunk c from its slot into the caller's buffer; pad is this set's scratch
 * chunk for a partial last chunk. Failures are recorded in p. */
static void decode_chunk(ckpt_h5_reader *r, const job *j, ckpt_slot *sl, int64_t c, void *pad)
{
    ckpt_pipeline *p = &r->pl;
    const size_t cb = j->chunk_bytes, total = (size_t)j->info.raw_bytes, off = (size_t)c * cb;
    const int partial = off + cb > total;
    uint8_t *dst = (uint8_t *)j->q->out, *to = partial ? pad : dst + off;
    xffl_status cs = r->dio_fd >= 0 && sl->zlen > 0 ? read_direct(r, sl) : XFFL_OK;
    const uint8_t *zp = (const uint8_t *)sl->z + sl->zoff;
    if (cs != XFFL_OK) {
        /* reported below */
    } else if (sl->zlen == 0) {
        memset(to, 0, cb); /* never written: HDF5 reads fill (zero) */
    } else {
        /* Bit i of the mask: filter i was skipped for this chunk (an optional filter
         * that declined, as h5py adds plugins). */
        const int shuffled = j->lay.shuffled;
        const int unzstd = !(sl->mask & (1u << (shuffled ? 1 : 0)));
        const int unshuf = shuffled && !(sl->mask & 1u);
        const void *plain = zp;
        if (unzstd) {
            cs = ckpt_zstd_decompress(zp, sl->zlen, unshuf ? sl->tmp : to, cb);
            plain = unshuf ? sl->tmp : to;
        } else if (sl->zlen != cb) {
            cs = xffl_fail(XFFL_ERR_CORRUPT, "unfiltered chunk of %zu bytes, expected %zu", sl->zlen, cb);
        }
        if (cs == XFFL_OK && unshuf) ckpt_unshuffle(plain, to, cb, ckpt_dtype_size(j->info.dtype));
        else if (cs == XFFL_OK && plain != to) memcpy(to, plain, cb);
    }
    if (cs != XFFL_OK) ckpt_pipeline_err(p, xffl_wrap(cs, "%s: tensor %s: chunk %lld", r->path, j->q->path, (long long)c));
    else if (partial) memcpy(dst + off, pad, total - off);
}

/* Fetches the raw chunks of w into set (this thread only: HDF5); with the O_DIRECT
 * descriptor only each chunk's address, size and filter mask, and the decoding task
 * reads the bytes. */
static void fetch_window(ckpt_h5_reader *r, window w, ckpt_slot *set)
{
    ckpt_pipeline *p = &r->pl;
    const job *j = w.j;
    for (int64_t c = w.c0; c < w.c1 && p->err == XFFL_OK; c++) {
        ckpt_slot *sl = &set[c - w.c0];
        hsize_t off[CKPT_MAX_DIMS] = {0}, sz = 0;
        off[0] = (hsize_t)(c * j->lay.rpc);
        sl->zlen = 0;
        sl->mask = 0;
        sl->zoff = 0;
        haddr_t addr = HADDR_UNDEF;
        if (r->dio_fd >= 0) {
            if (H5Dget_chunk_info_by_coord(j->ds, off, &sl->mask, &addr, &sz) < 0 || addr == HADDR_UNDEF) sz = 0;
        } else if (H5Dget_chunk_storage_size(j->ds, off, &sz) < 0) {
            sz = 0;
        }
        if (sz == 0) continue;
        /* a chunk's stored size is bounded by what zstd can make of it: more is damage,
         * and never an allocation the file alone decides */
        if (sz > j->chunk_bytes + (j->chunk_bytes >> 7) + 4096) {
            ckpt_pipeline_err(p, xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: chunk %lld stores %llu bytes for %zu",
                                           r->path, j->q->path, (long long)c, (unsigned long long)sz, j->chunk_bytes));
            return;
        }
        if (sz > sl->zcap) {
            free(sl->z);
            sl->zcap = (size_t)sz;
            if (!(sl->z = ckpt_zbuf_alloc(sl->zcap))) {
                sl->zcap = 0;
                ckpt_pipeline_err(p, xffl_fail(XFFL_ERR_NOMEM, "%s: tensor %s: chunk %lld (%llu bytes)", r->path,
                                               j->q->path, (long long)c, (unsigned long long)sz));
                return;
            }
        }
        if (r->dio_fd >= 0)
            sl->addr = (uint64_t)addr;
        else if (H5Dread_chunk(j->ds, H5P_DEFAULT, off, &sl->mask, sl->z) < 0) {
            ckpt_pipeline_err(p, xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: chunk %lld: cannot read (truncated file?)",
                                           r->path, j->q->path, (long long)c));
            return;
        }
        sl->zlen = (size_t)sz;
    }
}

/* One dataset's digest: hashes whatever is ready, in order, until nothing is left. */
static void hash_runner(job *j)
{
    for (;;) {
        size_t a, b;
#pragma omp critical(ckpt_h5_hash)
        {
            a = j->hashed, b = j->ready;
            if (a == b) j->hashing = 0;
        }
        if (a == b) return;
        xffl_sha256_update(j->sha, (const uint8_t *)j->q->out + a, b - a);
#pragma omp critical(ckpt_h5_hash)
        j->hashed = b;
    }
}

/* Marks out[0, b) of j decoded: its hash task takes it on, or one is started. Task
 * dependences would order this too, but GCC 12's libgomp leaked the records of tasks
 * with depend clauses under OMP_WAIT_POLICY=passive. */
static void spawn_hash(job *j, size_t b)
{
    if (b > (size_t)j->info.raw_bytes) b = (size_t)j->info.raw_bytes;
    int start;
#pragma omp critical(ckpt_h5_hash)
    {
        j->ready = b;
        start = !j->hashing;
        j->hashing = 1;
    }
    if (start) {
#pragma omp task firstprivate(j)
        hash_runner(j);
    }
}

static void spawn_window_hash(window w) { spawn_hash(w.j, (size_t)w.c1 * w.j->chunk_bytes); }

/* Fetches window w into set: raw chunks for the threaded layout; a dataset HDF5 must
 * decode itself is read whole here (its "window" is the dataset) and hashed at once. */
static void fetch(ckpt_h5_reader *r, window w, ckpt_slot *set)
{
    job *j = w.j;
    if (j->lay.fast) {
        fetch_window(r, w, set);
    } else if (H5Dread(j->ds, ckpt_h5_mem_type(j->info.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, (void *)j->q->out) < 0) {
        ckpt_pipeline_err(&r->pl, xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: cannot read or decode", r->path,
                                            j->q->path));
    } else {
        spawn_hash(j, (size_t)j->info.raw_bytes);
    }
}

/* The batch as one list of windows. Window g is decoded from slot set g % 2 by tasks
 * while this thread fetches window g+1 into the other set; the taskgroup waits for
 * those decode tasks only, and then window g goes to its dataset's hash task: created
 * outside the taskgroup, hashes never hold up fetching. */
static void run(ckpt_h5_reader *r, job *jobs, int n)
{
    ckpt_pipeline *p = &r->pl;
    int64_t nw = 0;
    for (int i = 0; i < n; i++) nw += jobs[i].lay.fast ? (jobs[i].nchunks + p->w - 1) / p->w : 1;
    window *wins = calloc((size_t)nw, sizeof *wins);
    if (!wins) {
        ckpt_pipeline_err(p, xffl_fail(XFFL_ERR_NOMEM, "%s: %lld chunk windows", r->path, (long long)nw));
        return;
    }
    int64_t k = 0;
    for (int i = 0; i < n; i++) {
        if (!jobs[i].lay.fast) {
            wins[k++] = (window){&jobs[i], 0, 0};
            continue;
        }
        for (int64_t c0 = 0; c0 < jobs[i].nchunks; c0 += p->w)
            wins[k++] = (window){&jobs[i], c0, c0 + p->w < jobs[i].nchunks ? c0 + p->w : jobs[i].nchunks};
    }
#pragma omp parallel num_threads(r->threads)
#pragma omp single
    {
        fetch(r, wins[0], &p->slots[0]);
        for (int64_t g = 0; g < nw && p->err == XFFL_OK; g++) {
            const window w = wins[g];
            ckpt_slot *set = &p->slots[(g % 2) * p->w];
            void *pad = p->pad[g % 2];
#pragma omp taskgroup
            {
                for (int64_t c = w.c0; w.j->lay.fast && c < w.c1; c++) {
#pragma omp task firstprivate(c, set, pad, w)
                    decode_chunk(r, w.j, &set[c - w.c0], c, pad);
                }
                if (g + 1 < nw) fetch(r, wins[g + 1], &p->slots[((g + 1) % 2) * p->w]);
            }
            if (w.j->lay.fast && p->err == XFFL_OK) spawn_window_hash(w);
        }
#pragma omp taskwait
    }
    free(wins);
}

xffl_status ckpt_h5_read_many(ckpt_h5_reader *r, int n, const ckpt_h5_request *req)
{
    if (n <= 0) return XFFL_OK;
    job *jobs = calloc((size_t)n, sizeof *jobs);
    XFFL_RETURN_IF(!jobs, XFFL_ERR_NOMEM, "%s: reading %d tensors", r->path, n);
    for (int i = 0; i < n; i++) jobs[i].ds = H5I_INVALID_HID;
    xffl_status s = XFFL_OK;
    size_t chunk_max = 0;
    for (int i = 0; i < n && s == XFFL_OK; i++) {
        s = prepare(r, &req[i], &jobs[i]);
        if (jobs[i].chunk_bytes > chunk_max) chunk_max = jobs[i].chunk_bytes;
    }
    if (s == XFFL_OK && chunk_max) s = ckpt_pipeline_ensure(&r->pl, r->threads, chunk_max, 1);
    if (s == XFFL_OK) {
        r->pl.err = XFFL_OK;
        run(r, jobs, n);
        if ((s = r->pl.err) != XFFL_OK) xffl_fail(s, "%s", r->pl.msg);
    }
    for (int i = 0; i < n && s == XFFL_OK; i++) {
        const job *j = &jobs[i];
        uint8_t dg[XFFL_SHA256_LEN];
        char hex[XFFL_SHA256_HEX];
        xffl_sha256_final(j->sha, dg);
        xffl_hex_encode(dg, XFFL_SHA256_LEN, hex);
        if (j->info.has_sha256 && strcmp(hex, j->info.sha256) != 0)
            s = xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: digest mismatch (sha256 attribute %.12s..., data %.12s...)",
                          r->path, j->q->path, j->info.sha256, hex);
        else if (j->q->sha_hex)
            memcpy(j->q->sha_hex, hex, XFFL_SHA256_HEX);
    }
    for (int i = 0; i < n; i++) {
        if (jobs[i].ds != H5I_INVALID_HID) H5Dclose(jobs[i].ds);
        xffl_sha256_free(jobs[i].sha);
    }
    free(jobs);
    return s;
}

xffl_status ckpt_h5_read(ckpt_h5_reader *r, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                         void *out, int allow_no_digest, char sha_hex[XFFL_SHA256_HEX])
{
    ckpt_h5_request q = {path, dtype, ndim, shape, out, allow_no_digest, sha_hex};
    return ckpt_h5_read_many(r, 1, &q);
}

xffl_status ckpt_h5_probe_dataset(ckpt_h5_reader *r, const char *path, uint64_t max_bytes)
{
    hid_t ds;
    XFFL_FORWARD(open_dataset(r, path, &ds));
    ckpt_h5_dataset_info info;
    layout lay;
    xffl_status s = describe(r, ds, path, &info, &lay);
    if (s == XFFL_OK && info.raw_bytes > max_bytes)
        s = xffl_fail(XFFL_ERR_INVALID, "%s: dataset %s: %llu bytes of values, more than the model has", r->path, path,
                      (unsigned long long)info.raw_bytes);
    if (s == XFFL_OK && lay.fast) {
        /* what fetch_window asks HDF5 for, chunk by chunk: the chunk index, and the
         * raw chunk where the reader goes through HDF5 */
        job j = {.ds = ds, .info = info, .lay = lay};
        j.chunk_bytes = (size_t)lay.rpc * (size_t)(info.raw_bytes / (uint64_t)info.shape[0]);
        j.nchunks = (info.shape[0] + lay.rpc - 1) / lay.rpc;
        ckpt_h5_request q = {.path = path};
        j.q = &q;
        ckpt_slot sl = {0};
        r->pl.err = XFFL_OK;
        for (int64_t c = 0; c < j.nchunks && r->pl.err == XFFL_OK; c++) fetch_window(r, (window){&j, c, c + 1}, &sl);
        free(sl.z);
        if (r->pl.err != XFFL_OK) s = xffl_fail(r->pl.err, "%s", r->pl.msg);
    } else if (s == XFFL_OK && info.raw_bytes) {
        void *buf = xffl_alloc_big((size_t)info.raw_bytes);
        if (!buf) s = xffl_fail(XFFL_ERR_NOMEM, "%s: dataset %s: %llu bytes", r->path, path,
                                (unsigned long long)info.raw_bytes);
        else if (H5Dread(ds, ckpt_h5_mem_type(info.dtype), H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            s = xffl_fail(XFFL_ERR_CORRUPT, "%s: tensor %s: cannot read or decode", r->path, path);
        free(buf);
    }
    H5Dclose(ds);
    return s;
}
