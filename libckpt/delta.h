/* Delta parts: one facility's θ_local − θ_v for one round, as HDF5 files on top of
 * the generic part writer (libckpt/h5part.h).
 *
 * Part file (format "xffl-delta", format_version 1), root attributes:
 *   round, base_version, base_index (the exact INDEX key trained from), facility,
 *   tokens, steps, loss_first, loss_last, loss_mean, encoding, block, part, parts,
 *   and k for an encoding that takes one (topk)
 * datasets, the encoding's (its ckpt_codec_def.datasets) for each tensor of the parameter
 * table, split into parts along tensor boundaries (a part is closed once its encoded
 * bytes reach part_size). For the builtins:
 *   delta/<name>  fp32: float32 [shape]; bf16: uint16 [shape]; int8: int8 [shape];
 *                 int4: uint8 [⌈numel/2⌉] (two codes per byte, see libckpt/codec.h)
 *   scale/<name>  float32 [⌈numel/block⌉] for int8/int4/topk
 *   index/<name>  uint8 [kept entries] for topk (block-local, increasing per block);
 *                 topk's delta/<name> is uint8 [⌈kept/2⌉] (int4 codes)
 * Each delta dataset carries an "encoding" attribute. The COMMIT's `tensor` lines
 * give, per tensor, float32, its table shape and the SHA-256 of the DECODED floats:
 * that is what aggregation consumes, and what reproduce --train compares. */
#ifndef XFFL_CKPT_DELTA_H
#define XFFL_CKPT_DELTA_H

#include <stdint.h>
#include "common/status.h"
#include "libckpt/codec.h"
#include "libckpt/h5part.h"
#include "libckpt/manifest.h"
#include "libckpt/model.h"

#define CKPT_DELTA_FORMAT "xffl-delta"
#define CKPT_DELTA_FORMAT_VERSION 1

typedef struct {
    int64_t round;
    int64_t base_version;
    const char *base_index; /* "versions/v000003/INDEX-3f9a0c12d4e1" */
    const char *facility;
    int64_t tokens, steps;
    double loss_first, loss_last, loss_mean;
    ckpt_codec codec;
    int block; /* elements per scale (int8/int4) or chunk (topk); 0 = CKPT_CODEC_BLOCK_DEFAULT */
    int k;     /* topk's entries per block (attribute k); 0 = CKPT_CODEC_TOPK_K_DEFAULT */
    int gaps;  /* topk: indices stored as gaps (attribute index_gaps, written only when 1) */
} ckpt_delta_meta;

typedef struct {
    char name[64];       /* "part-000-8b1e44a0c9d2.h5": content-named */
    char path[4096];     /* where it was written locally */
    uint64_t bytes;
    char sha256[XFFL_SHA256_HEX];
} ckpt_delta_file;

/* Encodes delta (t->total floats, table order) with meta->codec, adding and then
 * updating residual (t->total floats, error feedback) when non-NULL, and writes the
 * parts into local directory dir. Adds to commit one `tensor` line per tensor and
 * one `object` line per part named key_prefix + part name. *files (caller frees) /
 * *nfiles list the parts in order. part_size 0 = one part. */
XFFL_MUST_USE xffl_status ckpt_delta_write(const char *dir, const ckpt_param_table *t, const float *delta,
                             const ckpt_delta_meta *meta, float *residual, uint64_t part_size,
                             const ckpt_h5_options *opt, const char *key_prefix, ckpt_manifest *commit,
                             ckpt_delta_file **files, int *nfiles);

/* Reads the parts at paths[0..n) (local copies of the COMMIT's objects, in order) and
 * decodes every tensor into delta (t->total floats). Checks, each failure INVALID or
 * CORRUPT with a message naming the file and tensor: format, round, base_version,
 * base_index and facility equal expect's; every table tensor present exactly once
 * with its table shape; dataset digests; decoded values finite; the decoded floats'
 * SHA-256 equal to the commit's `tensor` line. */
XFFL_MUST_USE xffl_status ckpt_delta_read(const char *const *paths, int n, const ckpt_param_table *t, const ckpt_manifest *commit,
                            const ckpt_delta_meta *expect, const ckpt_h5_options *opt, float *delta);

#endif
