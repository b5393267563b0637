/* ckpt_h5_layout_check: a dataset's storage against its dataspace. See h5part_read.h. */
#include "libckpt/h5part.h"

#include "libckpt/h5part_read.h"
#include "libckpt/zstd_filter.h"

/* The filters a part may use: shuffle and zstd as xffl writes them, deflate and
 * fletcher32 as other tools add them. Anything else is refused before HDF5 runs it. */
static int known_filter(int id)
{
    return id == 1 /* deflate */ || id == CKPT_SHUFFLE_FILTER_ID || id == 3 /* fletcher32 */ ||
           id == CKPT_ZSTD_FILTER_ID;
}

/* Values a dataset may hold: far beyond any model's tensor, far below an overflow. */
#define MAX_RAW_BYTES ((uint64_t)1 << 40)

xffl_status ckpt_h5_layout_check(ckpt_h5_layout *l, const char *file, const char *path)
{
    XFFL_RETURN_IF(l->ndim < 1 || l->ndim > CKPT_MAX_DIMS, XFFL_ERR_INVALID, "%s: dataset %s: %d dimensions (1..%d)",
                   file, path, l->ndim, CKPT_MAX_DIMS);
    XFFL_RETURN_IF(l->elem_bytes < 1 || l->elem_bytes > 8, XFFL_ERR_INTERNAL, "%s: dataset %s: element size", file, path);
    uint64_t numel = 1;
    for (int i = 0; i < l->ndim; i++) {
        XFFL_RETURN_IF(l->dims[i] > l->maxdims[i], XFFL_ERR_CORRUPT,
                       "%s: dataset %s: dimension %d is %llu, more than its maximum %llu", file, path, i,
                       (unsigned long long)l->dims[i], (unsigned long long)l->maxdims[i]);
        XFFL_RETURN_IF(l->dims[i] && numel > MAX_RAW_BYTES / l->elem_bytes / l->dims[i], XFFL_ERR_CORRUPT,
                       "%s: dataset %s: more than %llu bytes of values", file, path, (unsigned long long)MAX_RAW_BYTES);
        numel *= l->dims[i];
    }
    l->numel = (int64_t)numel;
    l->raw_bytes = numel * l->elem_bytes;
    l->fast = 0;
    XFFL_RETURN_IF(l->nfilters < 0 || l->nfilters > CKPT_H5_MAX_FILTERS, XFFL_ERR_CORRUPT, "%s: dataset %s: %d filters",
                   file, path, l->nfilters);
    for (int i = 0; i < l->nfilters; i++)
        XFFL_RETURN_IF(!known_filter(l->filters[i]), XFFL_ERR_INVALID, "%s: dataset %s: filter %d is not one xffl reads",
                       file, path, l->filters[i]);
    if (l->kind == CKPT_H5_CHUNKED) {
        XFFL_RETURN_IF(l->chunk_ndim != l->ndim, XFFL_ERR_CORRUPT,
                       "%s: dataset %s: chunk rank %d differs from its %d dimensions", file, path, l->chunk_ndim,
                       l->ndim);
        int whole_rows = 1;
        for (int i = 0; i < l->ndim; i++) {
            XFFL_RETURN_IF(l->chunk[i] < 1 || l->chunk[i] > (l->dims[i] ? l->dims[i] : 1), XFFL_ERR_CORRUPT,
                           "%s: dataset %s: chunk dimension %d is %llu, the dataset's is %llu", file, path, i,
                           (unsigned long long)l->chunk[i], (unsigned long long)l->dims[i]);
            if (i > 0) whole_rows &= l->chunk[i] == l->dims[i];
        }
        int nf = l->nfilters;
        l->fast = whole_rows && l->dims[0] > 0 &&
                  ((nf == 2 && l->filters[0] == CKPT_SHUFFLE_FILTER_ID && l->filters[1] == CKPT_ZSTD_FILTER_ID) ||
                   (nf == 1 && l->filters[0] == CKPT_ZSTD_FILTER_ID));
        return XFFL_OK;
    }
    XFFL_RETURN_IF(l->nfilters != 0, XFFL_ERR_CORRUPT, "%s: dataset %s: filters on an unchunked dataset", file, path);
    if (l->kind == CKPT_H5_COMPACT) return XFFL_OK;
    XFFL_RETURN_IF(l->kind != CKPT_H5_CONTIGUOUS, XFFL_ERR_INVALID, "%s: dataset %s: a storage layout xffl does not read",
                   file, path);
    XFFL_RETURN_IF(l->stored != 0 && l->stored != l->raw_bytes, XFFL_ERR_CORRUPT,
                   "%s: dataset %s: %llu bytes stored for %llu bytes of values", file, path,
                   (unsigned long long)l->stored, (unsigned long long)l->raw_bytes);
    XFFL_RETURN_IF(l->stored && l->offset != UINT64_MAX && l->file_size &&
                       (l->offset > l->file_size || l->stored > l->file_size - l->offset),
                   XFFL_ERR_CORRUPT, "%s: dataset %s: its values lie past the end of the file", file, path);
    return XFFL_OK;
}
