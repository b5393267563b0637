/* Delta encodings: how θ_local − θ_v travels to the store.
 *
 *   fp32  the floats themselves (the part writer still byte-shuffles + zstd's them)
 *   bf16  upper 16 bits of each float, rounded to nearest even (stored as uint16)
 *   int8  codes in [−127, 127], one float scale per block: x ≈ code · scale
 *   int4  codes in [−7, 7], two per byte (element 2i in the low nibble, stored + 8),
 *         one float scale per block
 *
 * Lossy encodings take an optional error-feedback residual: what the encoding lost
 * this round is added to the next round's delta before encoding, so nothing is lost
 * for good (the facility keeps the residual in its --state DIR, never in the store).
 * Decoding is only multiplications by the block scale, so every aggregator decodes
 * the same bits. */
#ifndef XFFL_CKPT_CODEC_H
#define XFFL_CKPT_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

typedef enum { CKPT_CODEC_FP32, CKPT_CODEC_BF16, CKPT_CODEC_INT8, CKPT_CODEC_INT4 } ckpt_codec;

enum { CKPT_CODEC_BLOCK_DEFAULT = 256 }; /* elements per scale for int8/int4 */

/* "fp32", "bf16", "int8", "int4". */
const char *ckpt_codec_name(ckpt_codec c);
/* Name → codec; USAGE error naming the text. */
xffl_status ckpt_codec_parse(const char *name, ckpt_codec *c);
/* Whether decode(encode(x)) may differ from x. */
int ckpt_codec_lossy(ckpt_codec c);

/* Bytes of codes for n values (fp32 4n, bf16 2n, int8 n, int4 ⌈n/2⌉). */
size_t ckpt_codec_code_bytes(ckpt_codec c, int64_t n);
/* Block scales for n values: ⌈n/block⌉ for int8/int4, 0 otherwise. */
int64_t ckpt_codec_scale_count(ckpt_codec c, int64_t n, int block);

/* Encodes x[0..n) (plus *residual element-wise, when residual is non-NULL) into codes
 * (ckpt_codec_code_bytes) and scales (ckpt_codec_scale_count floats; NULL allowed when
 * 0). With a residual, afterwards residual[i] = (x[i] + old residual[i]) − decoded[i].
 * INVALID naming the element if an input is not finite. */
xffl_status ckpt_codec_encode(ckpt_codec c, const float *x, int64_t n, int block, float *residual, void *codes,
                              float *scales);
/* Decodes n values into out. INVALID if a scale is not finite or negative. */
xffl_status ckpt_codec_decode(ckpt_codec c, const void *codes, const float *scales, int64_t n, int block, float *out);

#endif
