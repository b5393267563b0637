/* Internal to libckpt's part reader (h5part_read.c: opening, attributes, listing;
 * h5part_read_data.c: datasets): what an open ckpt_h5_reader holds. Other modules
 * use h5part.h. */
#ifndef XFFL_CKPT_H5PART_READ_H
#define XFFL_CKPT_H5PART_READ_H

#include <hdf5.h>
#include <stdint.h>
#include "libckpt/h5pipe.h"

struct ckpt_h5_reader {
    hid_t file;
    char *path;
    int threads;
    ckpt_pipeline pl;
    int dio_fd; /* the file opened O_DIRECT for the threads' chunk reads; -1: via HDF5 */
    int buf_fd; /* the file again, buffered: where O_DIRECT refuses an offset or size */
};

/* A dataset's storage as HDF5 describes it (h5part_read_data.c fills it), before any
 * value is read. */
enum { CKPT_H5_CHUNKED, CKPT_H5_CONTIGUOUS, CKPT_H5_COMPACT, CKPT_H5_OTHER };
enum { CKPT_H5_MAX_FILTERS = 4 };
typedef struct {
    int ndim;                         /* 1..CKPT_MAX_DIMS (the caller checked) */
    uint64_t dims[CKPT_MAX_DIMS];
    uint64_t maxdims[CKPT_MAX_DIMS];  /* UINT64_MAX: unlimited */
    size_t elem_bytes;
    int kind;                         /* CKPT_H5_* */
    int chunk_ndim;                   /* chunked: the chunk's rank */
    uint64_t chunk[CKPT_MAX_DIMS];
    int nfilters;
    int filters[CKPT_H5_MAX_FILTERS]; /* HDF5 filter ids, pipeline order */
    uint64_t stored, offset;          /* contiguous: bytes stored, where (UINT64_MAX: none) */
    uint64_t file_size;               /* 0: unknown */
    /* set by ckpt_h5_layout_check */
    int64_t numel;
    uint64_t raw_bytes;
    int fast; /* laid out as ckpt_h5_write does: whole rows per chunk, [shuffle,] zstd */
} ckpt_h5_layout;

/* The storage checked against its own dataspace before HDF5 reads a byte of it:
 * libhdf5 1.10 trusts a layout message, and chunks wider than the dataset (a 32x64
 * tensor declaring 32x65600) or an unknown filter crash H5Dread itself. Sets numel,
 * raw_bytes (no overflow) and fast. CORRUPT or INVALID naming file and dataset. */
XFFL_MUST_USE xffl_status ckpt_h5_layout_check(ckpt_h5_layout *l, const char *file, const char *path);

/* One dataset as the reader will meet it (h5part_read_data.c): checks, layout, the
 * chunk index, or its values through HDF5; nothing decoded by xffl. The probe's part. */
XFFL_MUST_USE xffl_status ckpt_h5_probe_dataset(ckpt_h5_reader *r, const char *path, uint64_t max_bytes);

#endif
