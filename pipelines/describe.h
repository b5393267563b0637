/* One target, an HDF5 file or a version of a store, described (`xffl show`: model
 * config, every tensor's shape, dtype and stored size) or verified (`xffl verify`:
 * structure and every digest). Store-wide checks are pipe_verify_all (inspect.h). */
#ifndef XFFL_PIPE_DESCRIBE_H
#define XFFL_PIPE_DESCRIBE_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "libckpt/model.h"
#include "pipelines/keys.h"
#include "storage/store.h"

typedef struct {
    char name[512]; /* "<group>/<tensor>" */
    ckpt_h5_dataset_info info;
} pipe_tensor_row;

/* A root attribute of a file, as text. */
typedef struct {
    const char *name;
    char *value;
    int is_int; /* an integer (JSON prints it bare) */
} pipe_file_attr;

typedef struct {
    int have_cfg;
    ckpt_model_config cfg;
    pipe_tensor_row *rows; /* by group (model, outer/m, outer/v, outer, delta, scale), then table order */
    int n_rows;
    int64_t parameters;    /* elements of model/ and delta/ */
    uint64_t raw_bytes, stored_bytes;
    /* a file: the attributes it has, of those show names */
    pipe_file_attr attrs[16];
    int n_attrs;
    /* a version: which one, and its INDEX */
    pipe_version_ref ref;
    ckpt_manifest *index;
} pipe_description;

/* One HDF5 file: its attributes, model config (when it has one) and datasets;
 * INVALID when it holds none. */
XFFL_MUST_USE xffl_status pipe_describe_file(const char *path, pipe_description *d);
/* A version (-1: LATEST's): its INDEX and every part, each fetched and checked
 * against its digest. */
XFFL_MUST_USE xffl_status pipe_describe_version(store *s, int64_t version, pipe_description *d);
void pipe_description_free(pipe_description *d);

/* Verifies one local HDF5 file: a delta part by every dataset's digest, a checkpoint
 * part as pipe_part_verify_file does. format (cap bytes) receives its format
 * attribute, *n_checked the datasets verified. */
XFFL_MUST_USE xffl_status pipe_verify_file(const char *path, char *format, size_t cap, int *n_checked);

typedef struct {
    pipe_version_ref ref;
    int parts, tensors;
    uint64_t stored_bytes;
    char federation_sha[XFFL_SHA256_HEX];
} pipe_version_check;

/* Verifies a version (-1: LATEST's) in full (pipe_version_fetch) and that its INDEX
 * names the federation.h5 the store holds (CORRUPT naming both when not). */
XFFL_MUST_USE xffl_status pipe_verify_version(store *s, int64_t version, pipe_version_check *out);

#endif
