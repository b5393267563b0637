#include "libckpt/zstd_filter.h"

#include <hdf5.h>
#include <stdint.h>
#include <string.h>
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
    size_t cap = ZSTD_compressBound(nbytes);
    void *out = H5allocate_memory(cap, 0);
    if (!out) return 0;
    size_t r = ZSTD_compress(out, cap, *buf, nbytes, level);
    if (ZSTD_isError(r)) {
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

xffl_status ckpt_zstd_compress(const void *src, size_t n, void *dst, size_t cap, int level, size_t *out)
{
    /* One context per thread: creating one per chunk costs more than level 1 itself. */
    static _Thread_local ZSTD_CCtx *cctx;
    if (!cctx) cctx = ZSTD_createCCtx();
    if (!cctx) return xffl_fail(XFFL_ERR_NOMEM, "zstd compression context");
    size_t r = ZSTD_compressCCtx(cctx, dst, cap, src, n, level);
    if (ZSTD_isError(r)) return xffl_fail(XFFL_ERR_INTERNAL, "zstd compress: %s", ZSTD_getErrorName(r));
    *out = r;
    return XFFL_OK;
}

xffl_status ckpt_zstd_decompress(const void *src, size_t n, void *dst, size_t want)
{
    static _Thread_local ZSTD_DCtx *dctx;
    if (!dctx) dctx = ZSTD_createDCtx();
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

/* 4x4 byte transpose of four little-endian words: byte j of word k becomes byte k of
 * word j. Shuffling float32 is this on (4 elements) <-> (4 planes), both ways. */
static inline void transpose4(uint32_t a, uint32_t b, uint32_t c, uint32_t d, uint32_t out[4])
{
    out[0] = (a & 0xffu) | ((b & 0xffu) << 8) | ((c & 0xffu) << 16) | (d << 24);
    out[1] = ((a >> 8) & 0xffu) | (b & 0xff00u) | ((c & 0xff00u) << 8) | ((d & 0xff00u) << 16);
    out[2] = ((a >> 16) & 0xffu) | ((b >> 8) & 0xff00u) | (c & 0xff0000u) | ((d & 0xff0000u) << 8);
    out[3] = (a >> 24) | ((b >> 16) & 0xff00u) | ((c >> 8) & 0xff0000u) | (d & 0xff000000u);
}

void ckpt_shuffle(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    size_t nelem = elsize ? nbytes / elsize : 0;
    if (elsize <= 1 || nelem <= 1) {
        memcpy(dst, src, nbytes);
        return;
    }
    if (elsize == 4) {
        uint8_t *d0 = d, *d1 = d + nelem, *d2 = d + 2 * nelem, *d3 = d + 3 * nelem;
        size_t i = 0;
        for (; i + 4 <= nelem; i += 4) {
            uint32_t w[4], t[4];
            memcpy(w, s + 4 * i, 16);
            transpose4(w[0], w[1], w[2], w[3], t);
            memcpy(d0 + i, &t[0], 4);
            memcpy(d1 + i, &t[1], 4);
            memcpy(d2 + i, &t[2], 4);
            memcpy(d3 + i, &t[3], 4);
        }
        for (; i < nelem; i++) {
            d0[i] = s[4 * i];
            d1[i] = s[4 * i + 1];
            d2[i] = s[4 * i + 2];
            d3[i] = s[4 * i + 3];
        }
    } else {
        for (size_t j = 0; j < elsize; j++)
            for (size_t i = 0; i < nelem; i++) d[j * nelem + i] = s[i * elsize + j];
    }
    memcpy(d + nelem * elsize, s + nelem * elsize, nbytes - nelem * elsize);
}

void ckpt_unshuffle(const void *src, void *dst, size_t nbytes, size_t elsize)
{
    const uint8_t *s = src;
    uint8_t *d = dst;
    size_t nelem = elsize ? nbytes / elsize : 0;
    if (elsize <= 1 || nelem <= 1) {
        memcpy(dst, src, nbytes);
        return;
    }
    if (elsize == 4) {
        const uint8_t *s0 = s, *s1 = s + nelem, *s2 = s + 2 * nelem, *s3 = s + 3 * nelem;
        size_t i = 0;
        for (; i + 4 <= nelem; i += 4) {
            uint32_t a, b, c, e, t[4];
            memcpy(&a, s0 + i, 4);
            memcpy(&b, s1 + i, 4);
            memcpy(&c, s2 + i, 4);
            memcpy(&e, s3 + i, 4);
            transpose4(a, b, c, e, t);
            memcpy(d + 4 * i, t, 16);
        }
        for (; i < nelem; i++) {
            d[4 * i] = s0[i];
            d[4 * i + 1] = s1[i];
            d[4 * i + 2] = s2[i];
            d[4 * i + 3] = s3[i];
        }
    } else {
        for (size_t j = 0; j < elsize; j++)
            for (size_t i = 0; i < nelem; i++) d[i * elsize + j] = s[j * nelem + i];
    }
    memcpy(d + nelem * elsize, s + nelem * elsize, nbytes - nelem * elsize);
}
