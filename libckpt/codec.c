#include "libckpt/codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const names[] = {"fp32", "bf16", "int8", "int4"};

const char *ckpt_codec_name(ckpt_codec c) { return (unsigned)c < 4 ? names[c] : "unknown"; }

xffl_status ckpt_codec_parse(const char *name, ckpt_codec *c)
{
    for (int i = 0; i < 4; i++)
        if (name && !strcmp(name, names[i])) {
            *c = (ckpt_codec)i;
            return XFFL_OK;
        }
    return xffl_fail(XFFL_ERR_USAGE, "unknown delta encoding '%s' (fp32, bf16, int8, int4)", name ? name : "");
}

int ckpt_codec_lossy(ckpt_codec c) { return c != CKPT_CODEC_FP32; }

size_t ckpt_codec_code_bytes(ckpt_codec c, int64_t n)
{
    switch (c) {
    case CKPT_CODEC_FP32: return (size_t)n * 4;
    case CKPT_CODEC_BF16: return (size_t)n * 2;
    case CKPT_CODEC_INT8: return (size_t)n;
    case CKPT_CODEC_INT4: return (size_t)(n + 1) / 2;
    }
    return 0;
}

int64_t ckpt_codec_scale_count(ckpt_codec c, int64_t n, int block)
{
    if (c != CKPT_CODEC_INT8 && c != CKPT_CODEC_INT4) return 0;
    return (n + block - 1) / block;
}

static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    /* round to nearest even on the 16 dropped bits (inputs are finite: checked) */
    uint32_t lsb = (u >> 16) & 1;
    u += 0x7fffu + lsb;
    return (uint16_t)(u >> 16);
}

static float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Round half away from zero, clamped: the code for v/scale. */
static int quant(float v, float inv, int qmax)
{
    float q = v * inv;
    int r = (int)(q < 0 ? q - 0.5f : q + 0.5f);
    return r > qmax ? qmax : r < -qmax ? -qmax : r;
}

xffl_status ckpt_codec_encode(ckpt_codec c, const float *x, int64_t n, int block, float *residual, void *codes,
                              float *scales)
{
    for (int64_t i = 0; i < n; i++)
        XFFL_RETURN_IF(!isfinite(x[i]), XFFL_ERR_INVALID, "delta element %lld is not finite", (long long)i);
    if (c == CKPT_CODEC_FP32) {
        float *o = codes;
        for (int64_t i = 0; i < n; i++) o[i] = residual ? x[i] + residual[i] : x[i];
        if (residual) memset(residual, 0, (size_t)n * sizeof *residual);
        return XFFL_OK;
    }
    if (c == CKPT_CODEC_BF16) {
        uint16_t *o = codes;
        for (int64_t i = 0; i < n; i++) {
            float v = residual ? x[i] + residual[i] : x[i];
            o[i] = f2bf(v);
            if (residual) residual[i] = v - bf2f(o[i]);
        }
        return XFFL_OK;
    }
    XFFL_RETURN_IF(c != CKPT_CODEC_INT8 && c != CKPT_CODEC_INT4, XFFL_ERR_INVALID, "delta encoding %d unknown", (int)c);
    XFFL_RETURN_IF(block < 1, XFFL_ERR_INVALID, "block size %d must be >= 1", block);
    const int qmax = c == CKPT_CODEC_INT8 ? 127 : 7;
    float *v = malloc((size_t)block * sizeof *v);
    XFFL_RETURN_IF(!v, XFFL_ERR_NOMEM, "codec block of %d", block);
    int8_t *o8 = codes;
    uint8_t *o4 = codes;
    if (c == CKPT_CODEC_INT4) memset(o4, 0, ckpt_codec_code_bytes(c, n));
    for (int64_t b = 0; b * block < n; b++) {
        int64_t start = b * block, len = n - start < block ? n - start : block;
        float amax = 0;
        for (int64_t j = 0; j < len; j++) {
            v[j] = residual ? x[start + j] + residual[start + j] : x[start + j];
            float a = fabsf(v[j]);
            if (a > amax) amax = a;
        }
        float scale = amax / (float)qmax, inv = amax > 0 ? (float)qmax / amax : 0;
        scales[b] = scale;
        for (int64_t j = 0; j < len; j++) {
            int q = quant(v[j], inv, qmax);
            int64_t i = start + j;
            if (c == CKPT_CODEC_INT8)
                o8[i] = (int8_t)q;
            else
                o4[i / 2] |= (uint8_t)((q + 8) << ((i & 1) * 4));
            if (residual) residual[i] = v[j] - (float)q * scale;
        }
    }
    free(v);
    return XFFL_OK;
}

xffl_status ckpt_codec_decode(ckpt_codec c, const void *codes, const float *scales, int64_t n, int block, float *out)
{
    switch (c) {
    case CKPT_CODEC_FP32: memcpy(out, codes, (size_t)n * 4); return XFFL_OK;
    case CKPT_CODEC_BF16: {
        const uint16_t *h = codes;
        for (int64_t i = 0; i < n; i++) out[i] = bf2f(h[i]);
        return XFFL_OK;
    }
    case CKPT_CODEC_INT8:
    case CKPT_CODEC_INT4: break;
    default: return xffl_fail(XFFL_ERR_INVALID, "delta encoding %d unknown", (int)c);
    }
    XFFL_RETURN_IF(block < 1, XFFL_ERR_INVALID, "block size %d must be >= 1", block);
    int64_t nb = ckpt_codec_scale_count(c, n, block);
    for (int64_t b = 0; b < nb; b++)
        XFFL_RETURN_IF(!isfinite(scales[b]) || scales[b] < 0, XFFL_ERR_INVALID, "block scale %lld is %g",
                       (long long)b, scales[b]);
    const int8_t *c8 = codes;
    const uint8_t *c4 = codes;
    for (int64_t i = 0; i < n; i++) {
        int q;
        if (c == CKPT_CODEC_INT8) {
            q = c8[i];
            XFFL_RETURN_IF(q < -127, XFFL_ERR_INVALID, "int8 code %d at element %lld out of range", q, (long long)i);
        } else {
            q = (int)((c4[i / 2] >> ((i & 1) * 4)) & 0xf) - 8;
            XFFL_RETURN_IF(q < -7, XFFL_ERR_INVALID, "int4 code %d at element %lld out of range", q, (long long)i);
        }
        out[i] = (float)q * scales[i / block];
    }
    return XFFL_OK;
}
