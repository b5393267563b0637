/* Internal to libckpt's part writer (h5part_write.c) and reader (h5part_read.h):
 * not an interface for other modules, use h5part.h.
 *
 * Chunks move through a ckpt_pipeline's slots while the calling thread, the only one
 * that calls HDF5 (not thread-safe here), hands them to or from HDF5: the writer uses
 * the slots as one ring that any thread fills (h5part_write.c), the reader as two windows,
 * one decoded by OpenMP tasks while the other is read (h5part_read_data.c). */
#ifndef XFFL_CKPT_H5PIPE_H
#define XFFL_CKPT_H5PIPE_H

#include <hdf5.h>
#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "libckpt/h5part.h"

/* 1 MiB: large enough that per-chunk overhead vanishes, small enough that the few
 * chunk buffers in flight stay cheap to fault in, and h5py's default 1 MiB chunk
 * cache holds one. */
#define CKPT_DEFAULT_CHUNK_BYTES ((size_t)1 << 20)
#define CKPT_DIGEST_ATTR "sha256"

/* Routes HDF5's error stack to the log at DEBUG (silenced below) and registers the
 * zstd filter; every open and create calls it. HDF5 naming the filter's id when it
 * cannot be registered. */
XFFL_MUST_USE xffl_status ckpt_h5_setup(void);
hid_t ckpt_h5_file_type(ckpt_dtype d); /* little-endian file type */
hid_t ckpt_h5_mem_type(ckpt_dtype d);  /* native memory type */

typedef struct {
    void *z;       /* compressed bytes */
    size_t zcap;
    size_t zlen;
    void *tmp;     /* one full chunk, shuffled */
    uint32_t mask; /* read: filter mask HDF5 reported */
    uint64_t addr; /* read, direct: the chunk's file offset; the decoding task reads it */
    size_t zoff;   /* read: the frame starts at z + zoff (direct reads start on a page) */
} ckpt_slot;

typedef struct {
    int nslots;      /* 2 windows of w slots (the writer: one ring) */
    int w;
    ckpt_slot *slots;
    void *pad[2];    /* one full chunk per window set: a partial last chunk, zero-padded
                      * (the writer uses pad[0]) */
    size_t cap;      /* chunk bytes the buffers hold */
    int zbuf;
    xffl_status err;
    char msg[XFFL_ERRMSG_MAX];
} ckpt_pipeline;

/* z buffers start on a page and hold CKPT_DIO_SLACK bytes beyond zcap, so a chunk read
 * with O_DIRECT (whole pages around it) fits. */
#define CKPT_DIO_ALIGN 4096
#define CKPT_DIO_SLACK (2 * CKPT_DIO_ALIGN)
void *ckpt_zbuf_alloc(size_t zcap);

/* A scalar string attribute of obj (fixed or variable length); what names obj in
 * messages. *value is malloc'd. */
XFFL_MUST_USE xffl_status ckpt_h5_read_str_attr(hid_t obj, const char *what, const char *name, char **value);

/* Records the first failure of any thread (status and message) in p. */
void ckpt_pipeline_err(ckpt_pipeline *p, xffl_status s);
void ckpt_pipeline_free(ckpt_pipeline *p);
/* Takes the process's spare buffers (if any) into p / gives p's back (then frees). */
void ckpt_pipeline_take(ckpt_pipeline *p);
void ckpt_pipeline_release(ckpt_pipeline *p);
/* Makes p hold 2 windows of 2*threads slots of chunk_bytes (and compressed buffers
 * when zbuf); reuses what it has; clears the recorded error. NOMEM on failure. */
XFFL_MUST_USE xffl_status ckpt_pipeline_ensure(ckpt_pipeline *p, int threads, size_t chunk_bytes, int zbuf);

#endif
