/* safetensors (huggingface/safetensors), read and written by our own code:
 *   8 bytes: N, the header length, uint64 little-endian
 *   N bytes: a JSON object {"NAME": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]},
 *            ..., "__metadata__": {"format": "pt"}} (string values only in __metadata__)
 *   the data: each tensor's raw little-endian, row-major bytes at [8+N+b, 8+N+e).
 * The reader accepts F32, F16 and BF16 and is as strict as the reference implementation:
 * the tensors tile the data exactly (sorted by offset, no gap, no overlap, nothing after
 * the last), shape x dtype size equals e - b, names are unique; anything else is
 * INVALID naming the file and the tensor. Data is read one tensor at a time, straight
 * into the caller's floats (fp16/bf16 through a small fixed buffer), so memory is
 * bounded by the largest tensor, not the file. */
#ifndef XFFL_FORMATS_SAFETENSORS_H
#define XFFL_FORMATS_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

typedef enum { FMT_ST_F32, FMT_ST_F16, FMT_ST_BF16 } fmt_st_dtype;

enum {
    FMT_ST_MAX_DIMS = 8,
    FMT_ST_MAX_HEADER = 100000000, /* the reference implementation's limit */
};

typedef struct {
    char *name;
    fmt_st_dtype dtype;
    int ndim;
    int64_t shape[FMT_ST_MAX_DIMS];
    int64_t numel;
    uint64_t begin, end; /* byte offsets into the data, which starts after the header */
} fmt_st_tensor;

typedef struct {
    char *path;
    int fd;              /* -1 for a header parsed from memory */
    uint64_t data_start; /* 8 + header length */
    int n;
    fmt_st_tensor *tensors; /* in data order */
} fmt_st_file;

/* "F32", "F16", "BF16"; fmt_st_dtype_parse: INVALID for anything else (never from the
 * header alone: the caller names the file and tensor). dtype size in bytes. */
const char *fmt_st_dtype_name(fmt_st_dtype d);
int fmt_st_dtype_parse(const char *name, fmt_st_dtype *d); /* 1 when known */
size_t fmt_st_dtype_size(fmt_st_dtype d);

/* Opens path and checks its header against its size. Caller owns *out (fmt_st_close).
 * NOT_FOUND/IO naming the file; INVALID naming file and tensor for a bad header. */
XFFL_MUST_USE xffl_status fmt_st_open(const char *path, fmt_st_file **out);
/* The header checks of fmt_st_open on bytes in memory: bytes[0..n) is the start of a
 * file of file_size bytes (n >= 8 + header length, or INVALID). what names it. The
 * result has fd -1 and reads nothing. Fuzzed by tests/fuzz/fuzz_safetensors.c. */
XFFL_MUST_USE xffl_status fmt_st_parse(const void *bytes, size_t n, uint64_t file_size, const char *what,
                                       fmt_st_file **out);
void fmt_st_close(fmt_st_file *f); /* accepts NULL */
/* The tensor named name, or NULL. */
const fmt_st_tensor *fmt_st_find(const fmt_st_file *f, const char *name);
/* Reads t as float32 into out (t->numel floats), converting F16/BF16 exactly. IO/INVALID
 * (short file) naming file and tensor. */
XFFL_MUST_USE xffl_status fmt_st_read(const fmt_st_file *f, const fmt_st_tensor *t, float *out);
/* Elements [first, first + count) of t (row-major), as fmt_st_read. */
XFFL_MUST_USE xffl_status fmt_st_read_range(const fmt_st_file *f, const fmt_st_tensor *t, int64_t first, int64_t count,
                                            float *out);

/* Writing: the tensors in order, each produced by fill (numel floats into out, which
 * holds the largest tensor) and stored in its dtype (bf16/fp16 rounded to nearest
 * even); header padded with spaces to a multiple of 8; written to path.tmp, fsynced and
 * renamed. */
typedef struct {
    const char *name;
    fmt_st_dtype dtype;
    int ndim;
    int64_t shape[FMT_ST_MAX_DIMS];
} fmt_st_spec;
typedef xffl_status (*fmt_st_fill_fn)(void *ctx, int i, float *out);
XFFL_MUST_USE xffl_status fmt_st_write(const char *path, const fmt_st_spec *specs, int n, fmt_st_fill_fn fill,
                                       void *ctx);
/* Bytes fmt_st_write stores for spec's data (numel x dtype size). */
uint64_t fmt_st_spec_bytes(const fmt_st_spec *s);

/* Conversions (exposed for tests): round to nearest even, NaN stays NaN. */
uint16_t fmt_f32_to_bf16(float f);
float fmt_bf16_to_f32(uint16_t h);
uint16_t fmt_f32_to_f16(float f);
float fmt_f16_to_f32(uint16_t h);

#endif
