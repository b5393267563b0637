/* Internal to libckpt's part reader (h5part_read.c: opening, attributes, listing;
 * h5part_read_data.c: datasets): what an open ckpt_h5_reader holds. Other modules
 * use h5part.h. */
#ifndef XFFL_CKPT_H5PART_READ_H
#define XFFL_CKPT_H5PART_READ_H

#include <hdf5.h>
#include "libckpt/h5pipe.h"

struct ckpt_h5_reader {
    hid_t file;
    char *path;
    int threads;
    ckpt_pipeline pl;
    int dio_fd; /* the file opened O_DIRECT for the threads' chunk reads; -1: via HDF5 */
    int buf_fd; /* the file again, buffered: where O_DIRECT refuses an offset or size */
};

/* One dataset as the reader will meet it (h5part_read_data.c): checks, layout, the
 * chunk index, or its values through HDF5; nothing decoded by xffl. The probe's part. */
XFFL_MUST_USE xffl_status ckpt_h5_probe_dataset(ckpt_h5_reader *r, const char *path, uint64_t max_bytes);

#endif
