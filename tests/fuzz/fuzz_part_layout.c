/* libFuzzer target: the part reader's checks before libhdf5 reads a value
 * (ckpt_h5_layout_check, libckpt/h5part_read.h): a dataset's dataspace, maximum
 * dimensions, storage layout, chunk dimensions, filter pipeline and contiguous extent,
 * built from the input as HDF5 would describe a damaged or crafted file. The files
 * themselves cannot be fuzzed in this process: Debian's libhdf5 1.10 crashes on some
 * (why delta parts are parsed in a child first, ckpt_h5_probe_isolated). Checked
 * beyond "no crash": what passes keeps every promise the reader relies on: chunks within
 * the dataset, numel and bytes without overflow, the threaded path's chunk geometry
 * (rows per chunk, chunk bytes, chunk count) without a zero or an overflow. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libckpt/h5part_read.h"

static uint64_t take(const uint8_t **p, size_t *n)
{
    uint64_t v = 0;
    size_t k = *n < 8 ? *n : 8;
    memcpy(&v, *p, k);
    *p += k, *n -= k;
    /* small dimensions mostly, so that inputs get past the first checks */
    return (v & 1) ? v >> 1 : (v >> 1) % 300;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    ckpt_h5_layout l;
    memset(&l, 0, sizeof l);
    l.ndim = 1 + data[0] % CKPT_MAX_DIMS;
    l.kind = data[1] % 4;
    l.elem_bytes = (size_t[]){1, 2, 4}[data[2] % 3];
    l.nfilters = data[3] % (CKPT_H5_MAX_FILTERS + 2);
    data += 4, size -= 4;
    for (int i = 0; i < l.ndim; i++) {
        l.dims[i] = take(&data, &size);
        uint64_t m = take(&data, &size);
        l.maxdims[i] = m == 299 ? UINT64_MAX : m == 298 ? l.dims[i] : m;
        l.chunk[i] = take(&data, &size);
    }
    l.chunk_ndim = size ? (int)(*data % 6) : l.ndim;
    static const int ids[] = {1, 2, 3, 4, 32000, 32015, 0, -1};
    for (int i = 0; i < CKPT_H5_MAX_FILTERS; i++) l.filters[i] = ids[take(&data, &size) % 8];
    l.stored = take(&data, &size);
    l.offset = take(&data, &size);
    l.file_size = take(&data, &size);
    if (ckpt_h5_layout_check(&l, "fuzz.h5", "delta/t") != XFFL_OK) return 0;
    uint64_t numel = 1;
    for (int i = 0; i < l.ndim; i++) {
        if (l.dims[i] > l.maxdims[i]) abort();
        if (l.dims[i] && numel > UINT64_MAX / l.dims[i]) abort();
        numel *= l.dims[i];
        if (l.kind == CKPT_H5_CHUNKED && (l.chunk[i] < 1 || l.chunk[i] > (l.dims[i] ? l.dims[i] : 1))) abort();
    }
    if ((uint64_t)l.numel != numel || l.raw_bytes != numel * l.elem_bytes || l.numel < 0) abort();
    if (l.fast) { /* h5part_read_data.c prepare(): the threaded path's geometry */
        if (l.kind != CKPT_H5_CHUNKED || l.dims[0] == 0) abort();
        uint64_t row = l.raw_bytes / l.dims[0], cb = l.chunk[0] * row;
        if (cb == 0 && l.raw_bytes) abort();
        if (row && cb / row != l.chunk[0]) abort();
        uint64_t nchunks = (l.dims[0] + l.chunk[0] - 1) / l.chunk[0];
        if (nchunks == 0 || nchunks > l.dims[0]) abort();
    }
    return 0;
}
