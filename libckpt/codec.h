/* Delta encodings: how θ_local − θ_v travels to the store.
 *
 *   fp32  the floats themselves (the part writer still byte-shuffles + zstd's them)
 *   bf16  upper 16 bits of each float, rounded to nearest even (stored as uint16)
 *   int8  codes in [−127, 127], one float scale per block: x ≈ code · scale
 *   int4  codes in [−7, 7], two per byte (element 2i in the low nibble, stored + 8),
 *         one float scale per block
 *   topk  sparse: per block (≤ 256 elements) the k entries of largest magnitude, as
 *         int4 codes (packed as int4's), block-local uint8 indices (strictly
 *         increasing; dataset "index") and one float scale per block; everything else is 0. With the
 *         default 256 and k = 4: 1.6 % of the entries, 0.375 bits per parameter
 *         before zstd. `--encoding topk:K` picks k. With params.gaps (every federation
 *         made since 2026-12-02: federation.h5 encoding_gaps, part attribute
 *         index_gaps) "index" holds each index's gap to the one before it in its block
 *         (the first: the index itself): the same information, but small numbers
 *         that zstd codes in ~4.5 bits instead of 8 (so more entries per byte).
 *
 * Lossy encodings take an optional error-feedback residual: what the encoding lost
 * this round is added to the next round's delta before encoding, so nothing is lost
 * for good (the facility keeps the residual in its --state DIR, never in the store).
 * Decoding is only multiplications by the block scale, so every aggregator decodes
 * the same bits.
 *
 * An encoding is one ckpt_codec_def: its name, whether it is lossy, the datasets it
 * writes per tensor (libckpt/delta.c writes and reads exactly those) and its encode
 * and decode. The builtins above are entries of the table in codec.c; another one is
 * added with ckpt_codec_register. */
#ifndef XFFL_CKPT_CODEC_H
#define XFFL_CKPT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"
#include "libckpt/h5part.h"

/* An encoding's index in the table: the builtins first (these names for the first
 * four; another builtin is found by its name), registered ones after. */
typedef enum { CKPT_CODEC_FP32, CKPT_CODEC_BF16, CKPT_CODEC_INT8, CKPT_CODEC_INT4, CKPT_CODEC_TOPK } ckpt_codec;

enum {
    CKPT_CODEC_BLOCK_DEFAULT = 256, /* elements per scale for int8/int4, per chunk for topk */
    CKPT_CODEC_TOPK_BLOCK_MAX = 256, /* topk's indices are one byte */
    CKPT_CODEC_TOPK_K_DEFAULT = 4,   /* 1/64 of each block */
    CKPT_CODEC_MAX = 16,            /* table capacity, builtins included */
    CKPT_CODEC_MAX_DATASETS = 4,    /* datasets one encoding writes per tensor */
};

/* An encoding's parameters, as the delta part records them (attributes block and k). */
typedef struct {
    int block; /* elements per scale (int8, int4) or per chunk (topk) */
    int k;     /* entries kept per block (encodings with takes_k); 0 otherwise */
    int gaps;  /* encodings with takes_k: 1 = indices stored as gaps (see topk above) */
} ckpt_codec_params;

/* One dataset an encoding writes per tensor, as <group>/<tensor name>. */
typedef struct {
    const char *group; /* "delta" (always first: the codes), "scale", ... */
    ckpt_dtype dtype;
    /* Elements for a tensor of numel values; NULL: the tensor's own shape. A count of
     * 0 writes no dataset. */
    int64_t (*count)(int64_t numel, const ckpt_codec_params *p);
    int tagged; /* 1: the dataset carries the "encoding" attribute */
} ckpt_codec_dataset;

/* One encoding. encode and decode get one buffer per dataset, in datasets[] order,
 * each holding that dataset's elements. */
typedef struct {
    const char *name; /* the "encoding" attribute, federation.h5's encoding, --encoding */
    int lossy;        /* decode(encode(x)) may differ from x */
    int takes_k;      /* 1: params.k is a setting (federation.h5 encoding_k, attribute k) */
    int n_datasets;
    ckpt_codec_dataset datasets[CKPT_CODEC_MAX_DATASETS];
    /* x[0..n) (finite: checked by the caller) plus *residual when non-NULL; afterwards
     * residual[i] = (x[i] + old residual[i]) − decoded[i]. */
    xffl_status (*encode)(const float *x, int64_t n, const ckpt_codec_params *p, float *residual, void *const out[]);
    /* INVALID naming the element or block when a code or side value is out of range. */
    xffl_status (*decode)(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out);
} ckpt_codec_def;

/* Adds def to the table (def must outlive every use) and gives its index in *id.
 * EXISTS naming a taken name, USAGE when the table is full or def is incomplete.
 * Not thread-safe: register before any work starts. */
XFFL_MUST_USE xffl_status ckpt_codec_register(const ckpt_codec_def *def, ckpt_codec *id);
/* The table entry of c, or NULL. */
const ckpt_codec_def *ckpt_codec_get(ckpt_codec c);
/* Entries in the table, builtins and registered ones. */
int ckpt_codec_count(void);
/* "fp32, bf16, int8, int4, topk[:K]" into buf (cap bytes, truncated), first_note after the
 * first name (NULL: none): the choices in help and error messages. */
void ckpt_codec_list(char *buf, size_t cap, const char *first_note);

/* "fp32", "bf16", "int8", "int4", a registered name, or "unknown". */
const char *ckpt_codec_name(ckpt_codec c);
/* Name → codec; USAGE error naming the text and the choices. */
XFFL_MUST_USE xffl_status ckpt_codec_parse(const char *name, ckpt_codec *c);
/* "NAME" or "NAME:K" (encodings that take k; K in 1..CKPT_CODEC_TOPK_BLOCK_MAX) → codec
 * and *k (the default when absent, 0 for an encoding without k). USAGE naming the text. */
XFFL_MUST_USE xffl_status ckpt_codec_parse_spec(const char *spec, ckpt_codec *c, int *k);
/* Whether c takes a k; the default params of c (block CKPT_CODEC_BLOCK_DEFAULT). */
int ckpt_codec_takes_k(ckpt_codec c);
ckpt_codec_params ckpt_codec_default_params(ckpt_codec c);
/* INVALID naming what is wrong when p does not suit c (block < 1, k out of 1..block,
 * topk's block above CKPT_CODEC_TOPK_BLOCK_MAX, gaps for an encoding without a k). */
XFFL_MUST_USE xffl_status ckpt_codec_check_params(ckpt_codec c, const ckpt_codec_params *p);
/* Whether decode(encode(x)) may differ from x. */
int ckpt_codec_lossy(ckpt_codec c);

/* Elements of dataset d for a tensor of n values (0 when c or d is unknown). */
int64_t ckpt_codec_dataset_count(ckpt_codec c, int d, int64_t n, const ckpt_codec_params *p);
/* Bytes of dataset d for a tensor of n values (0 when c or d is unknown). */
size_t ckpt_codec_dataset_bytes(ckpt_codec c, int d, int64_t n, const ckpt_codec_params *p);
/* Bytes of codes (dataset 0) for n values with the default params (fp32 4n, bf16 2n,
 * int8 n, int4 ⌈n/2⌉). */
size_t ckpt_codec_code_bytes(ckpt_codec c, int64_t n);
/* Elements of the side dataset (dataset 1: block scales, ⌈n/block⌉ for int8/int4),
 * 0 for encodings without one. */
int64_t ckpt_codec_scale_count(ckpt_codec c, int64_t n, int block);

/* Encodes x[0..n) (plus *residual element-wise, when residual is non-NULL) into one
 * buffer per dataset. INVALID naming the element if an input is not finite. */
XFFL_MUST_USE xffl_status ckpt_codec_encode_sets(ckpt_codec c, const float *x, int64_t n, const ckpt_codec_params *p,
                                                 float *residual, void *const out[]);
/* Decodes n values from one buffer per dataset into out. */
XFFL_MUST_USE xffl_status ckpt_codec_decode_sets(ckpt_codec c, const void *const in[], int64_t n,
                                                 const ckpt_codec_params *p, float *out);
/* The same for encodings of at most two datasets: codes (ckpt_codec_code_bytes) and
 * scales (ckpt_codec_scale_count floats; NULL allowed when 0). Decoding is INVALID if
 * a scale is not finite or negative. */
XFFL_MUST_USE xffl_status ckpt_codec_encode(ckpt_codec c, const float *x, int64_t n, int block, float *residual,
                                            void *codes, float *scales);
XFFL_MUST_USE xffl_status ckpt_codec_decode(ckpt_codec c, const void *codes, const float *scales, int64_t n, int block,
                                            float *out);

#endif
