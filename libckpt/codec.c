#include "libckpt/codec.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static XFFL_MUST_USE xffl_status fp32_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual, void *const out[])
{
    (void)p;
    float *o = out[0];
    for (int64_t i = 0; i < n; i++) o[i] = residual ? x[i] + residual[i] : x[i];
    if (residual) memset(residual, 0, (size_t)n * sizeof *residual);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status fp32_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    (void)p;
    memcpy(out, in[0], (size_t)n * 4);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status bf16_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual, void *const out[])
{
    (void)p;
    uint16_t *o = out[0];
    for (int64_t i = 0; i < n; i++) {
        float v = residual ? x[i] + residual[i] : x[i];
        o[i] = f2bf(v);
        if (residual) residual[i] = v - bf2f(o[i]);
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status bf16_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    (void)p;
    const uint16_t *h = in[0];
    for (int64_t i = 0; i < n; i++) out[i] = bf2f(h[i]);
    return XFFL_OK;
}

/* Round half away from zero, clamped: the code for v/scale. */
static int quant(float v, float inv, int qmax)
{
    float q = v * inv;
    int r = (int)(q < 0 ? q - 0.5f : q + 0.5f);
    return r > qmax ? qmax : r < -qmax ? -qmax : r;
}

/* int8 (qmax 127, a byte per code) and int4 (qmax 7, two codes per byte, + 8). */
static XFFL_MUST_USE xffl_status block_encode(int qmax, const float *x, int64_t n, int block, float *residual, void *const out[])
{
    XFFL_RETURN_IF(block < 1, XFFL_ERR_INVALID, "block size %d must be >= 1", block);
    float *v = malloc((size_t)block * sizeof *v);
    XFFL_RETURN_IF(!v, XFFL_ERR_NOMEM, "codec block of %d", block);
    int8_t *o8 = out[0];
    uint8_t *o4 = out[0];
    float *scales = out[1];
    if (qmax == 7) memset(o4, 0, (size_t)(n + 1) / 2);
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
            if (qmax == 127)
                o8[i] = (int8_t)q;
            else
                o4[i / 2] |= (uint8_t)((q + 8) << ((i & 1) * 4));
            if (residual) residual[i] = v[j] - (float)q * scale;
        }
    }
    free(v);
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status block_decode(int qmax, const void *const in[], int64_t n, int block, float *out)
{
    XFFL_RETURN_IF(block < 1, XFFL_ERR_INVALID, "block size %d must be >= 1", block);
    const float *scales = in[1];
    int64_t nb = (n + block - 1) / block;
    for (int64_t b = 0; b < nb; b++)
        XFFL_RETURN_IF(!isfinite(scales[b]) || scales[b] < 0, XFFL_ERR_INVALID, "block scale %lld is %g",
                       (long long)b, scales[b]);
    const int8_t *c8 = in[0];
    const uint8_t *c4 = in[0];
    for (int64_t i = 0; i < n; i++) {
        int q;
        if (qmax == 127) {
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

static XFFL_MUST_USE xffl_status int8_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual, void *const out[])
{
    return block_encode(127, x, n, p->block, residual, out);
}
static XFFL_MUST_USE xffl_status int8_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    return block_decode(127, in, n, p->block, out);
}
static XFFL_MUST_USE xffl_status int4_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual, void *const out[])
{
    return block_encode(7, x, n, p->block, residual, out);
}
static XFFL_MUST_USE xffl_status int4_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    return block_decode(7, in, n, p->block, out);
}

/* topk: per block, the k entries of largest magnitude (ties: the lower index), stored
 * as block-local indices in increasing order (or, with p->gaps, their gaps: index −
 * previous index, the first as is) and int4 codes against one scale per block (the
 * largest kept magnitude / 7). A block shorter than k (the tensor's last) keeps all of
 * its entries. */
static int64_t topk_kept(int64_t n, const ckpt_codec_params *p)
{
    int64_t tail = n % p->block;
    return n / p->block * p->k + (tail < p->k ? tail : p->k);
}

typedef struct {
    float mag;
    int idx;
} topk_entry;

/* The order entries are kept in: larger magnitude first, then the lower index. It is
 * total, so the k-th entry, and with it the kept set, does not depend on how it is
 * found. */
static int topk_before(topk_entry a, topk_entry b) { return a.mag > b.mag || (a.mag == b.mag && a.idx < b.idx); }

/* The k-th entry (1-based) of e[0..len) in topk_before's order, by quickselect
 * (e is permuted): O(len) where sorting each block was ~60 % of a round's encode. */
static topk_entry topk_kth(topk_entry *e, int len, int k)
{
    int lo = 0, hi = len - 1, want = k - 1;
    while (lo < hi) {
        topk_entry pivot = e[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) { /* Hoare partition: e[lo..j] before-or-equal pivot, e[i..hi] after-or-equal */
            /* bounded, so that a NaN (no order) cannot walk off the block */
            while (i < hi && topk_before(e[i], pivot)) i++;
            while (j > lo && topk_before(pivot, e[j])) j--;
            if (i <= j) {
                topk_entry t = e[i];
                e[i++] = e[j];
                e[j--] = t;
            }
        }
        if (want <= j) hi = j;
        else if (want >= i) lo = i;
        else break; /* between: e[want] is the pivot itself */
    }
    return e[want];
}

static XFFL_MUST_USE xffl_status topk_encode(const float *x, int64_t n, const ckpt_codec_params *p, float *residual,
                                             void *const out[])
{
    XFFL_FORWARD(ckpt_codec_check_params(CKPT_CODEC_TOPK, p));
    uint8_t *codes = out[0], *idx = out[1];
    float *scales = out[2];
    float v[CKPT_CODEC_TOPK_BLOCK_MAX];
    topk_entry e[CKPT_CODEC_TOPK_BLOCK_MAX];
    memset(codes, 0, (size_t)(topk_kept(n, p) + 1) / 2);
    int64_t o = 0; /* kept entries so far */
    for (int64_t b = 0; b * p->block < n; b++) {
        int64_t start = b * p->block;
        int len = (int)(n - start < p->block ? n - start : p->block), k = len < p->k ? len : p->k;
        for (int j = 0; j < len; j++) {
            v[j] = residual ? x[start + j] + residual[start + j] : x[start + j];
            e[j] = (topk_entry){fabsf(v[j]), j};
        }
        topk_entry kth = topk_kth(e, len, k);
        /* the kept entries in increasing index order; the first in order is kept, so
         * amax is the block's largest magnitude */
        float amax = 0;
        for (int j = 0, n_kept = 0; j < len && n_kept < k; j++) {
            topk_entry c = {fabsf(v[j]), j};
            if (c.idx != kth.idx && !topk_before(c, kth)) continue;
            e[n_kept++] = c;
            amax = c.mag > amax ? c.mag : amax;
        }
        float scale = amax / 7.0f, inv = amax > 0 ? 7.0f / amax : 0;
        scales[b] = scale;
        if (residual) memcpy(residual + start, v, (size_t)len * sizeof *v); /* dropped: carried over whole */
        for (int j = 0; j < k; j++, o++) {
            int q = quant(v[e[j].idx], inv, 7);
            idx[o] = (uint8_t)(p->gaps && j > 0 ? e[j].idx - e[j - 1].idx : e[j].idx);
            codes[o / 2] |= (uint8_t)((q + 8) << ((o & 1) * 4));
            if (residual) residual[start + e[j].idx] = v[e[j].idx] - (float)q * scale;
        }
    }
    return XFFL_OK;
}

static XFFL_MUST_USE xffl_status topk_decode(const void *const in[], int64_t n, const ckpt_codec_params *p, float *out)
{
    XFFL_FORWARD(ckpt_codec_check_params(CKPT_CODEC_TOPK, p));
    const uint8_t *codes = in[0], *idx = in[1];
    const float *scales = in[2];
    memset(out, 0, (size_t)n * sizeof *out);
    int64_t o = 0;
    for (int64_t b = 0; b * p->block < n; b++) {
        int64_t start = b * p->block;
        int len = (int)(n - start < p->block ? n - start : p->block), k = len < p->k ? len : p->k;
        XFFL_RETURN_IF(!isfinite(scales[b]) || scales[b] < 0, XFFL_ERR_INVALID, "topk block %lld: scale %g",
                       (long long)b, scales[b]);
        for (int j = 0, prev = -1; j < k; j++, o++) {
            int q = (int)((codes[o / 2] >> ((o & 1) * 4)) & 0xf) - 8;
            int ix = p->gaps && j > 0 ? prev + idx[o] : idx[o];
            XFFL_RETURN_IF(ix >= len, XFFL_ERR_INVALID, "topk block %lld: index %d out of range (block of %d)",
                           (long long)b, ix, len);
            /* increasing (a gap of at least 1): a repeated index would add one entry twice */
            XFFL_RETURN_IF(j > 0 && ix <= prev, XFFL_ERR_INVALID,
                           "topk block %lld: index %d after %d (repeated or out of order)", (long long)b, ix, prev);
            XFFL_RETURN_IF(q < -7, XFFL_ERR_INVALID, "topk code %d at entry %lld out of range", q, (long long)o);
            out[start + ix] = (float)q * scales[b];
            prev = ix;
        }
    }
    return XFFL_OK;
}

static int64_t per_block(int64_t n, const ckpt_codec_params *p) { return (n + p->block - 1) / p->block; }
static int64_t two_per_byte(int64_t n, const ckpt_codec_params *p) { return (void)p, (n + 1) / 2; }
static int64_t topk_codes(int64_t n, const ckpt_codec_params *p) { return (topk_kept(n, p) + 1) / 2; }

#define SCALES {"scale", CKPT_DT_F32, per_block, 0}
static const ckpt_codec_def builtins[] = {
    [CKPT_CODEC_FP32] = {"fp32", 0, 0, 1, {{"delta", CKPT_DT_F32, NULL, 1}}, fp32_encode, fp32_decode},
    [CKPT_CODEC_BF16] = {"bf16", 1, 0, 1, {{"delta", CKPT_DT_U16, NULL, 1}}, bf16_encode, bf16_decode},
    [CKPT_CODEC_INT8] = {"int8", 1, 0, 2, {{"delta", CKPT_DT_I8, NULL, 1}, SCALES}, int8_encode, int8_decode},
    [CKPT_CODEC_INT4] = {"int4", 1, 0, 2, {{"delta", CKPT_DT_U8, two_per_byte, 1}, SCALES}, int4_encode, int4_decode},
    [CKPT_CODEC_TOPK] = {"topk", 1, 1, 3,
                         {{"delta", CKPT_DT_U8, topk_codes, 1}, {"index", CKPT_DT_U8, topk_kept, 0}, SCALES},
                         topk_encode, topk_decode},
};
#undef SCALES

/* Registered entries follow the builtins. */
enum { N_BUILTINS = sizeof builtins / sizeof builtins[0] };
static const ckpt_codec_def *registered[CKPT_CODEC_MAX - N_BUILTINS];
static int n_registered;

const ckpt_codec_def *ckpt_codec_get(ckpt_codec c)
{
    if ((unsigned)c < N_BUILTINS) return &builtins[c];
    if ((unsigned)c - N_BUILTINS < (unsigned)n_registered) return registered[c - N_BUILTINS];
    return NULL;
}

int ckpt_codec_count(void) { return N_BUILTINS + n_registered; }

xffl_status ckpt_codec_register(const ckpt_codec_def *def, ckpt_codec *id)
{
    XFFL_RETURN_IF(!def || !def->name || !def->encode || !def->decode || def->n_datasets < 1 ||
                       def->n_datasets > CKPT_CODEC_MAX_DATASETS,
                   XFFL_ERR_USAGE, "encoding '%s': name, encode, decode and 1-%d datasets needed",
                   def && def->name ? def->name : "", CKPT_CODEC_MAX_DATASETS);
    for (int i = 0; i < ckpt_codec_count(); i++)
        XFFL_RETURN_IF(!strcmp(ckpt_codec_name((ckpt_codec)i), def->name), XFFL_ERR_EXISTS,
                       "encoding '%s' exists already", def->name);
    XFFL_RETURN_IF(ckpt_codec_count() == CKPT_CODEC_MAX, XFFL_ERR_USAGE, "encoding '%s': the table holds %d already",
                   def->name, CKPT_CODEC_MAX);
    registered[n_registered++] = def;
    *id = (ckpt_codec)(ckpt_codec_count() - 1);
    return XFFL_OK;
}

void ckpt_codec_list(char *buf, size_t cap, const char *first_note)
{
    size_t o = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < ckpt_codec_count() && o < cap; i++) {
        int w = snprintf(buf + o, cap - o, "%s%s%s%s", i ? ", " : "", ckpt_codec_name((ckpt_codec)i),
                         ckpt_codec_takes_k((ckpt_codec)i) ? "[:K]" : "", i == 0 && first_note ? first_note : "");
        if (w < 0) break;
        o += (size_t)w;
    }
}

const char *ckpt_codec_name(ckpt_codec c)
{
    const ckpt_codec_def *d = ckpt_codec_get(c);
    return d ? d->name : "unknown";
}

xffl_status ckpt_codec_parse(const char *name, ckpt_codec *c)
{
    for (int i = 0; i < ckpt_codec_count(); i++)
        if (name && !strcmp(name, ckpt_codec_name((ckpt_codec)i))) {
            *c = (ckpt_codec)i;
            return XFFL_OK;
        }
    char choices[256];
    ckpt_codec_list(choices, sizeof choices, NULL);
    return xffl_fail(XFFL_ERR_USAGE, "unknown encoding '%s' (%s)", name ? name : "", choices);
}

int ckpt_codec_lossy(ckpt_codec c)
{
    const ckpt_codec_def *d = ckpt_codec_get(c);
    return d ? d->lossy : 0;
}

int ckpt_codec_takes_k(ckpt_codec c)
{
    const ckpt_codec_def *d = ckpt_codec_get(c);
    return d ? d->takes_k : 0;
}

ckpt_codec_params ckpt_codec_default_params(ckpt_codec c)
{
    return (ckpt_codec_params){CKPT_CODEC_BLOCK_DEFAULT, ckpt_codec_takes_k(c) ? CKPT_CODEC_TOPK_K_DEFAULT : 0, 0};
}

xffl_status ckpt_codec_check_params(ckpt_codec c, const ckpt_codec_params *p)
{
    const ckpt_codec_def *d = ckpt_codec_get(c);
    XFFL_RETURN_IF(!d, XFFL_ERR_INVALID, "delta encoding %d unknown", (int)c);
    XFFL_RETURN_IF(p->block < 1 || p->block > (1 << 24), XFFL_ERR_INVALID, "%s: block %d out of range", d->name,
                   p->block);
    XFFL_RETURN_IF(p->gaps != 0 && (p->gaps != 1 || !d->takes_k), XFFL_ERR_INVALID,
                   "%s: index gaps %d (1 only for an encoding with a k)", d->name, p->gaps);
    if (!d->takes_k) return XFFL_OK;
    XFFL_RETURN_IF(c == CKPT_CODEC_TOPK && p->block > CKPT_CODEC_TOPK_BLOCK_MAX, XFFL_ERR_INVALID,
                   "topk: block %d above %d", p->block, CKPT_CODEC_TOPK_BLOCK_MAX);
    XFFL_RETURN_IF(p->k < 1 || p->k > p->block, XFFL_ERR_INVALID, "%s: k %d outside 1..%d (the block)", d->name, p->k,
                   p->block);
    return XFFL_OK;
}

xffl_status ckpt_codec_parse_spec(const char *spec, ckpt_codec *c, int *k)
{
    char name[64];
    const char *colon = spec ? strchr(spec, ':') : NULL;
    size_t len = colon ? (size_t)(colon - spec) : spec ? strlen(spec) : 0;
    XFFL_RETURN_IF(len >= sizeof name, XFFL_ERR_USAGE, "unknown encoding '%s'", spec);
    memcpy(name, spec ? spec : "", len);
    name[len] = 0;
    XFFL_FORWARD(ckpt_codec_parse(name, c));
    *k = ckpt_codec_default_params(*c).k;
    if (!colon) return XFFL_OK;
    XFFL_RETURN_IF(!ckpt_codec_takes_k(*c), XFFL_ERR_USAGE, "encoding '%s' takes no ':K' (%s)", name, spec);
    char *end;
    long v = strtol(colon + 1, &end, 10);
    XFFL_RETURN_IF(end == colon + 1 || *end || v < 1 || v > CKPT_CODEC_TOPK_BLOCK_MAX, XFFL_ERR_USAGE,
                   "encoding '%s': K must be 1..%d (entries kept of every %d)", spec, CKPT_CODEC_TOPK_BLOCK_MAX,
                   CKPT_CODEC_BLOCK_DEFAULT);
    *k = (int)v;
    return XFFL_OK;
}

int64_t ckpt_codec_dataset_count(ckpt_codec c, int d, int64_t n, const ckpt_codec_params *p)
{
    const ckpt_codec_def *def = ckpt_codec_get(c);
    if (!def || d < 0 || d >= def->n_datasets) return 0;
    return def->datasets[d].count ? def->datasets[d].count(n, p) : n;
}

size_t ckpt_codec_dataset_bytes(ckpt_codec c, int d, int64_t n, const ckpt_codec_params *p)
{
    const ckpt_codec_def *def = ckpt_codec_get(c);
    if (!def || d < 0 || d >= def->n_datasets) return 0;
    return (size_t)ckpt_codec_dataset_count(c, d, n, p) * ckpt_dtype_size(def->datasets[d].dtype);
}

size_t ckpt_codec_code_bytes(ckpt_codec c, int64_t n)
{
    ckpt_codec_params p = ckpt_codec_default_params(c);
    return ckpt_codec_dataset_bytes(c, 0, n, &p);
}

int64_t ckpt_codec_scale_count(ckpt_codec c, int64_t n, int block)
{
    ckpt_codec_params p = {.block = block};
    return ckpt_codec_dataset_count(c, 1, n, &p);
}

xffl_status ckpt_codec_encode_sets(ckpt_codec c, const float *x, int64_t n, const ckpt_codec_params *p,
                                   float *residual, void *const out[])
{
    const ckpt_codec_def *def = ckpt_codec_get(c);
    for (int64_t i = 0; i < n; i++)
        XFFL_RETURN_IF(!isfinite(x[i]), XFFL_ERR_INVALID, "delta element %lld is not finite", (long long)i);
    XFFL_RETURN_IF(!def, XFFL_ERR_INVALID, "delta encoding %d unknown", (int)c);
    XFFL_FORWARD(ckpt_codec_check_params(c, p));
    return def->encode(x, n, p, residual, out);
}

xffl_status ckpt_codec_decode_sets(ckpt_codec c, const void *const in[], int64_t n, const ckpt_codec_params *p,
                                   float *out)
{
    const ckpt_codec_def *def = ckpt_codec_get(c);
    XFFL_RETURN_IF(!def, XFFL_ERR_INVALID, "delta encoding %d unknown", (int)c);
    XFFL_FORWARD(ckpt_codec_check_params(c, p));
    return def->decode(in, n, p, out);
}

xffl_status ckpt_codec_encode(ckpt_codec c, const float *x, int64_t n, int block, float *residual, void *codes,
                              float *scales)
{
    void *const out[] = {codes, scales};
    const ckpt_codec_def *def = ckpt_codec_get(c);
    XFFL_RETURN_IF(def && def->n_datasets > 2, XFFL_ERR_INTERNAL, "encoding %s writes %d datasets: use encode_sets",
                   def->name, def->n_datasets);
    ckpt_codec_params p = {.block = block};
    return ckpt_codec_encode_sets(c, x, n, &p, residual, out);
}

xffl_status ckpt_codec_decode(ckpt_codec c, const void *codes, const float *scales, int64_t n, int block, float *out)
{
    const void *const in[] = {codes, scales};
    const ckpt_codec_def *def = ckpt_codec_get(c);
    XFFL_RETURN_IF(def && def->n_datasets > 2, XFFL_ERR_INTERNAL, "encoding %s writes %d datasets: use decode_sets",
                   def->name, def->n_datasets);
    ckpt_codec_params p = {.block = block};
    return ckpt_codec_decode_sets(c, in, n, &p, out);
}
