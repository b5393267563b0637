/* libFuzzer target: delta decoding (libckpt/codec.h), the step after the part reader:
 * the codes and side values (int8/int4/topk scales, bf16 halves, topk indices) of one
 * tensor, as a facility's part holds them, decoded by each builtin encoding. Input: one
 * byte picking the encoding (and for topk whether indices are gaps), two bytes of block size, one of k, then the datasets' bytes
 * in order. Checked beyond "no crash": a decode that succeeds leaves no NaN it was not
 * given (a scale or code out of range is INVALID, not a silent value), and topk sets at
 * most k entries per block (a repeated or out-of-range index is INVALID). */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libckpt/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4) return 0;
    ckpt_codec c = (ckpt_codec)(data[0] % 5);
    ckpt_codec_params p = {1 + (int)((data[1] | data[2] << 8) % 1024), data[3]};
    if (ckpt_codec_takes_k(c)) { /* mostly valid; the first byte's next bit: indices as gaps */
        p.block = 1 + p.block % CKPT_CODEC_TOPK_BLOCK_MAX;
        p.gaps = (data[0] / 5) & 1;
    }
    data += 4, size -= 4;
    const ckpt_codec_def *def = ckpt_codec_get(c);
    if (!def) abort();
    /* numel from the bytes there are: as many elements as the codes dataset can hold */
    int64_t numel = (int64_t)(size / ckpt_dtype_size(def->datasets[0].dtype));
    if (c == CKPT_CODEC_INT4) numel = (int64_t)size * 2;
    if (c == CKPT_CODEC_TOPK) numel = (int64_t)size * 4;
    if (numel > 1 << 16) numel = 1 << 16;
    void *in[CKPT_CODEC_MAX_DATASETS] = {0};
    size_t at = 0;
    for (int d = 0; d < def->n_datasets; d++) {
        int64_t n = !def->datasets[d].count ? numel : ckpt_codec_check_params(c, &p) == XFFL_OK ? def->datasets[d].count(numel, &p) : 0;
        size_t bytes = (size_t)n * ckpt_dtype_size(def->datasets[d].dtype);
        in[d] = calloc(1, bytes + 1);
        if (!in[d]) abort();
        size_t take = at < size ? (size - at < bytes ? size - at : bytes) : 0;
        memcpy(in[d], data + at, take);
        at += take;
    }
    float *out = malloc((size_t)(numel ? numel : 1) * sizeof(float));
    if (!out) abort();
    xffl_status st = ckpt_codec_decode_sets(c, (const void *const *)in, numel, &p, out);
    if (st == XFFL_OK && c != CKPT_CODEC_FP32 && c != CKPT_CODEC_BF16)
        for (int64_t i = 0; i < numel; i++)
            if (isnan(out[i])) abort();
    if (st == XFFL_OK && c == CKPT_CODEC_TOPK)
        for (int64_t b = 0; b * p.block < numel; b++) {
            int set = 0;
            for (int64_t i = b * p.block; i < numel && i < (b + 1) * p.block; i++) set += out[i] != 0;
            if (set > p.k) abort();
        }
    free(out);
    for (int d = 0; d < def->n_datasets; d++) free(in[d]);
    return 0;
}
