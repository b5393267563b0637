#include "libckpt/zstd_filter.h"

#include <hdf5.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
/* For ZSTD_c_literalCompressionMode (zstd's "experimental" parameters, unchanged since
 * 1.4.5; the library checks the value and the ratio test in make test would catch a
 * library that ignored it). */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#include <zstd_errors.h>

/* HDF5 hands the filter a buffer it owns; it must be replaced through HDF5's own
 * allocator because the plugin may be loaded into a process with another malloc. */
static size_t zstd_filter(unsigned int flags, size_t cd_nelmts, const unsigned int cd_values[], size_t nbytes,
                          size_t *buf_size, void **buf)
{
    if (flags & H5Z_FLAG_REVERSE) {
        unsigned long long want = ZSTD_getFrameContentSize(*buf, nbytes);
        if (want == ZSTD_CONTENTSIZE_ERROR) return 0;
        if (want == ZSTD_CONTENTSIZE_UNKNOWN) {
            /* Frames from streaming writers omit the size: grow until it fits. */
            size_t cap = nbytes * 4 + 4096;
            for (;;) {
                void *out = H5allocate_memory(cap, 0);
                if (!out) return 0;
                size_t r = ZSTD_decompress(out, cap, *buf, nbytes);
                if (!ZSTD_isError(r)) {
                    H5free_memory(*buf);
                    *buf = out;
                    *buf_size = cap;
                    return r;
                }
                H5free_memory(out);
                if (ZSTD_getErrorCode(r) != ZSTD_error_dstSize_tooSmall || cap > ((size_t)1 << 34)) return 0;
                cap *= 2;
            }
        }
        void *out = H5allocate_memory(want ? (size_t)want : 1, 0);
        if (!out) return 0;
        size_t r = ZSTD_decompress(out, (size_t)want, *buf, nbytes);
        if (ZSTD_isError(r) || r != want) {
            H5free_memory(out);
            return 0;
        }
        H5free_memory(*buf);
        *buf = out;
        *buf_size = (size_t)want;
        return r;
    }
    int level = cd_nelmts > 0 ? (int)cd_values[0] : CKPT_ZSTD_DEFAULT_LEVEL;
    size_t cap = ZSTD_compressBound(nbytes), r = 0;
    void *out = H5allocate_memory(cap, 0);
    if (!out) return 0;
    if (ckpt_zstd_compress(*buf, nbytes, out, cap, level, &r) != XFFL_OK) {
        H5free_memory(out);
        return 0;
    }
    H5free_memory(*buf);
    *buf = out;
    *buf_size = cap;
    return r;
}

static const H5Z_class2_t zstd_class = {
    H5Z_CLASS_T_VERS,
    (H5Z_filter_t)CKPT_ZSTD_FILTER_ID,
    1, /* encoder present */
    1, /* decoder present */
    "Zstandard compression: http://www.zstd.net",
    NULL,
    NULL,
    zstd_filter,
};

const void *ckpt_zstd_filter_class(void) { return &zstd_class; }

xffl_status ckpt_zstd_register(void)
{
    htri_t have = H5Zfilter_avail(CKPT_ZSTD_FILTER_ID);
    if (have > 0) return XFFL_OK;
    if (H5Zregister(&zstd_class) < 0)
        return xffl_fail(XFFL_ERR_HDF5, "registering the zstd HDF5 filter (id %d)", CKPT_ZSTD_FILTER_ID);
    return XFFL_OK;
}

size_t ckpt_zstd_bound(size_t n) { return ZSTD_compressBound(n); }

/* One context of each kind per thread: creating one per chunk costs more than
 * compressing. A thread-specific key frees it when its thread exits (OpenMP retires
 * pool threads when a later region asks for fewer, and ranks run as threads in tests),
 * so no context outlives its thread. */
static pthread_key_t cctx_key, dctx_key;
static pthread_once_t ctx_keys_once = PTHREAD_ONCE_INIT;
static void free_cctx(void *c) { ZSTD_freeCCtx(c); }
static void free_dctx(void *c) { ZSTD_freeDCtx(c); }
static void make_ctx_keys(void)
{
    /* should a key not be made, its contexts stay until the process exits, as before */
    pthread_key_create(&cctx_key, free_cctx);
    pthread_key_create(&dctx_key, free_dctx);
}

static ZSTD_CCtx *thread_cctx(void)
{
    static _Thread_local ZSTD_CCtx *cctx;
    if (!cctx && (cctx = ZSTD_createCCtx()) != NULL) {
        pthread_once(&ctx_keys_once, make_ctx_keys);
        pthread_setspecific(cctx_key, cctx);
    }
    return cctx;
}

static ZSTD_DCtx *thread_dctx(void)
{
    static _Thread_local ZSTD_DCtx *dctx;
    if (!dctx && (dctx = ZSTD_createDCtx()) != NULL) {
        pthread_once(&ctx_keys_once, make_ctx_keys);
        pthread_setspecific(dctx_key, dctx);
    }
    return dctx;
}

xffl_status ckpt_zstd_compress(const void *src, size_t n, void *dst, size_t cap, int level, size_t *out)
{
    static _Thread_local int cctx_level = INT_MIN;
    ZSTD_CCtx *cctx = thread_cctx();
    if (!cctx) return xffl_fail(XFFL_ERR_NOMEM, "zstd compression context");
    if (level != cctx_level) {
        /* Literals are Huffman-coded at every level: zstd leaves them raw at negative
         * levels, which is where float weights gain nothing else (zstd_filter.h). */
        size_t e = ZSTD_CCtx_reset(cctx, ZSTD_reset_session_and_parameters);
        if (!ZSTD_isError(e)) e = ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, level);
        if (!ZSTD_isError(e)) e = ZSTD_CCtx_setParameter(cctx, ZSTD_c_literalCompressionMode, ZSTD_ps_enable);
        if (ZSTD_isError(e)) return xffl_fail(XFFL_ERR_INVALID, "zstd level %d: %s", level, ZSTD_getErrorName(e));
        cctx_level = level;
    }
    size_t r = ZSTD_compress2(cctx, dst, cap, src, n);
    if (ZSTD_isError(r)) return xffl_fail(XFFL_ERR_INTERNAL, "zstd compress: %s", ZSTD_getErrorName(r));
    *out = r;
    return XFFL_OK;
}

xffl_status ckpt_zstd_decompress(const void *src, size_t n, void *dst, size_t want)
{
    ZSTD_DCtx *dctx = thread_dctx();
    if (!dctx) return xffl_fail(XFFL_ERR_NOMEM, "zstd decompression context");
    unsigned long long declared = ZSTD_getFrameContentSize(src, n);
    if (declared == ZSTD_CONTENTSIZE_ERROR) return xffl_fail(XFFL_ERR_CORRUPT, "not a zstd frame");
    if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != want)
        return xffl_fail(XFFL_ERR_CORRUPT, "zstd frame holds %llu bytes, expected %zu", declared, want);
    size_t r = ZSTD_decompressDCtx(dctx, dst, want, src, n);
    if (ZSTD_isError(r)) return xffl_fail(XFFL_ERR_CORRUPT, "zstd: %s", ZSTD_getErrorName(r));
    if (r != want) return xffl_fail(XFFL_ERR_CORRUPT, "zstd frame holds %zu bytes, expected %zu", r, want);
    return XFFL_OK;
}
