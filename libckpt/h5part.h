/* One HDF5 part file: the generic writer and reader behind checkpoint parts
 * (format "xffl-checkpoint"), delta parts ("xffl-delta") and federation.h5.
 *
 * Layout written (docs/design.md "HDF5 files"):
 *   - root attributes: strings, 64-bit ints, doubles (scalars);
 *   - datasets at paths like "model/<tensor>", "outer/<tensor>", "delta/<tensor>",
 *     "scale/<tensor>" (intermediate groups are created), dtype float32, uint16, int8,
 *     uint32
 *     or uint8, any shape of 1..4 dims (no zero extents);
 *   - every dataset chunked along its first dimension only (about 1 MiB per chunk,
 *     whole rows), filters shuffle (2) then zstd (32015, cd_values[0] = level), and a
 *     string attribute "sha256" = hex SHA-256 of its uncompressed bytes (row-major);
 *   - no timestamps and fixed creation order: the same content gives the same bytes.
 * Chunks are shuffled, compressed and hashed in worker threads (OpenMP) and handed to
 * HDF5 with H5Dwrite_chunk; reading takes each chunk's address from HDF5 and the
 * decoding threads read it with O_DIRECT (H5Dread_chunk where direct reads are not
 * possible) and decode it. Datasets written by other tools (other chunking, other filters) are
 * read through HDF5's own pipeline instead.
 *
 * HDF5 is called only from the calling thread, and Debian's HDF5 is not thread-safe:
 * do not use two writers/readers from two threads at once.
 * Every error message names the file and, where there is one, the dataset. HDF5's own
 * error stack goes to the log at DEBUG (--verbose) and is silenced otherwise. */
#ifndef XFFL_CKPT_H5PART_H
#define XFFL_CKPT_H5PART_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "common/digest.h"

/* uint32: the XOR words of a version update (pipelines/update.h); appended last so the
 * others keep their values. */
typedef enum { CKPT_DT_F32, CKPT_DT_U16, CKPT_DT_I8, CKPT_DT_U8, CKPT_DT_U32 } ckpt_dtype;

enum { CKPT_MAX_DIMS = 4 };

/* "float32", "uint16", "int8", "uint8", "uint32" (the names used in manifests). */
const char *ckpt_dtype_name(ckpt_dtype d);
size_t ckpt_dtype_size(ckpt_dtype d);
/* Name -> dtype; INVALID naming the text. */
XFFL_MUST_USE xffl_status ckpt_dtype_parse(const char *name, ckpt_dtype *out);

typedef struct {
    int level;          /* zstd level; 0 = CKPT_ZSTD_DEFAULT_LEVEL */
    int threads;        /* compression threads; 0 = OpenMP default */
    size_t chunk_bytes; /* target uncompressed chunk size; 0 = 1 MiB */
} ckpt_h5_options;

typedef struct ckpt_h5_writer ckpt_h5_writer; /* opaque */

/* Creates (truncates) path. opt may be NULL (defaults). Caller owns *out and must
 * call ckpt_h5_writer_close (which also frees). IO/HDF5 error naming path. */
XFFL_MUST_USE xffl_status ckpt_h5_writer_create(const char *path, const ckpt_h5_options *opt, ckpt_h5_writer **out);
/* Flushes and closes the file, then fsyncs it; frees w in every case (accepts NULL). */
XFFL_MUST_USE xffl_status ckpt_h5_writer_close(ckpt_h5_writer *w);
/* Closes and frees without promising anything about the file (error paths; NULL ok). */
void ckpt_h5_writer_abort(ckpt_h5_writer *w);

/* Root attributes (scalar). Writing the same name twice is an INTERNAL error. */
XFFL_MUST_USE xffl_status ckpt_h5_attr_str(ckpt_h5_writer *w, const char *name, const char *value);
XFFL_MUST_USE xffl_status ckpt_h5_attr_int(ckpt_h5_writer *w, const char *name, int64_t value);
XFFL_MUST_USE xffl_status ckpt_h5_attr_double(ckpt_h5_writer *w, const char *name, double value);

/* Writes one dataset (path relative to the root, e.g. "model/norm.weight"):
 * shape[0..ndim) elements of dtype, row-major, from data. sha_hex (may be NULL)
 * receives the digest also stored as the dataset's "sha256" attribute;
 * stored (may be NULL) receives the compressed bytes written. Writing a path twice
 * is an INTERNAL error naming it. */
XFFL_MUST_USE xffl_status ckpt_h5_write(ckpt_h5_writer *w, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                          const void *data, char sha_hex[XFFL_SHA256_HEX], uint64_t *stored);
/* A string attribute on a dataset already written (e.g. "encoding"="bf16"). */
XFFL_MUST_USE xffl_status ckpt_h5_dataset_attr_str(ckpt_h5_writer *w, const char *path, const char *name, const char *value);

typedef struct ckpt_h5_reader ckpt_h5_reader; /* opaque */

/* Opens an existing file read-only. NOT_FOUND for a missing path; CORRUPT for an
 * empty, non-HDF5 or truncated file; each naming path. Caller owns *out; close with
 * ckpt_h5_reader_close (accepts NULL). opt may be NULL (threads for decoding). */
XFFL_MUST_USE xffl_status ckpt_h5_reader_open(const char *path, const ckpt_h5_options *opt, ckpt_h5_reader **out);
void ckpt_h5_reader_close(ckpt_h5_reader *r);
/* The path it was opened with (owned by r). */
const char *ckpt_h5_reader_path(const ckpt_h5_reader *r);

/* Root attributes. NOT_FOUND naming file and attribute when absent, INVALID when of
 * another type. *value from _str is malloc'd (caller frees). */
XFFL_MUST_USE xffl_status ckpt_h5_get_attr_str(ckpt_h5_reader *r, const char *name, char **value);
XFFL_MUST_USE xffl_status ckpt_h5_get_attr_int(ckpt_h5_reader *r, const char *name, int64_t *value);
/* The file's root `format` is `format` and its `format_version` one this code reads
 * (1..newest), docs/design.md "Format versions"; INVALID naming the file otherwise. */
XFFL_MUST_USE xffl_status ckpt_h5_check_format(ckpt_h5_reader *r, const char *format, int64_t newest);
XFFL_MUST_USE xffl_status ckpt_h5_get_attr_double(ckpt_h5_reader *r, const char *name, double *value);
int ckpt_h5_has_attr(ckpt_h5_reader *r, const char *name);
/* A string attribute of a dataset (NOT_FOUND naming file, dataset and attribute). */
XFFL_MUST_USE xffl_status ckpt_h5_get_dataset_attr_str(ckpt_h5_reader *r, const char *path, const char *name, char **value);

/* Names of the datasets directly inside group (e.g. "model"), sorted bytewise.
 * NOT_FOUND naming file and group when absent. Free with ckpt_h5_names_free. */
XFFL_MUST_USE xffl_status ckpt_h5_list(ckpt_h5_reader *r, const char *group, char ***names, int *count);
void ckpt_h5_names_free(char **names, int count);
/* 1 if a dataset exists at path. */
int ckpt_h5_has_dataset(ckpt_h5_reader *r, const char *path);

typedef struct {
    ckpt_dtype dtype;
    int ndim;
    int64_t shape[CKPT_MAX_DIMS];
    int64_t numel;
    uint64_t raw_bytes;     /* numel * dtype size */
    uint64_t stored_bytes;  /* bytes on disk (compressed chunks) */
    int has_sha256;
    char sha256[XFFL_SHA256_HEX]; /* from the attribute; "" if none */
    int fast;               /* 1 if laid out as ckpt_h5_write does (threaded read path) */
} ckpt_h5_dataset_info;

/* NOT_FOUND naming file and dataset when absent; INVALID for an unsupported dtype. */
XFFL_MUST_USE xffl_status ckpt_h5_info(ckpt_h5_reader *r, const char *path, ckpt_h5_dataset_info *info);

/* Reads a whole dataset into out (numel * dtype size bytes) and verifies it:
 *   dtype / ndim / shape must equal the expected ones (INVALID naming file, dataset,
 *   expected and found shapes; pass ndim = 0 to accept any shape);
 *   an undecodable chunk is CORRUPT naming file, dataset and chunk;
 *   the "sha256" attribute must be present (INVALID) unless allow_no_digest, and must
 *   match the bytes read (CORRUPT naming file and dataset).
 * sha_hex (may be NULL) receives the digest of what was read. */
XFFL_MUST_USE xffl_status ckpt_h5_read(ckpt_h5_reader *r, const char *path, ckpt_dtype dtype, int ndim, const int64_t *shape,
                         void *out, int allow_no_digest, char sha_hex[XFFL_SHA256_HEX]);

/* One dataset of a batch read: ckpt_h5_read's arguments. out and sha_hex belong to
 * the caller; sha_hex may be NULL. */
typedef struct {
    const char *path;
    ckpt_dtype dtype;
    int ndim;
    const int64_t *shape;
    void *out;
    int allow_no_digest;
    char *sha_hex; /* XFFL_SHA256_HEX bytes, or NULL */
} ckpt_h5_request;

/* Reads and verifies n datasets as ckpt_h5_read does each, overlapping one's digest
 * with the next one's decoding (faster than n calls: SHA-256 is the slowest step).
 * All are checked (dtype, shape, digest attribute) before any is read. Returns the
 * first failure, naming file and tensor; what the outputs hold then is unspecified. */
XFFL_MUST_USE xffl_status ckpt_h5_read_many(ckpt_h5_reader *r, int n, const ckpt_h5_request *req);

/* A file another party wrote, parsed as the readers will parse it before they are let
 * near it: every attribute, every dataset's layout and chunk index (or its values,
 * through HDF5, where not laid out as ckpt_h5_write does), in a child process
 * (common/isolate.h), since libhdf5 1.10 itself crashes on some crafted files. A crash
 * is CORRUPT naming path; a dataset of more than max_bytes of values is INVALID. What
 * xffl decodes itself (zstd, shuffle) is left to the read, which checks it. */
XFFL_MUST_USE xffl_status ckpt_h5_probe_isolated(const char *path, uint64_t max_bytes);

#endif
