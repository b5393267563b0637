/* bf16 GEMMs through oneDNN's matmul primitive (contract in bf16.h). */
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/prof.h"

#include <dnnl.h>
#include <immintrin.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int kcpu_bf16_available(void)
{
    const char *e = getenv("XFFL_CPU_BF16");
    if (e && !strcmp(e, "0")) return 0;
    /* the ISA values are nested bit sets: avx512_core_amx contains avx512_core_bf16's bits */
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    return (isa & (unsigned)dnnl_cpu_isa_avx512_core_bf16) == (unsigned)dnnl_cpu_isa_avx512_core_bf16;
}

const char *kcpu_bf16_isa(void)
{
    static const struct {
        dnnl_cpu_isa_t isa;
        const char *name;
    } names[] = {
        {dnnl_cpu_isa_avx512_core_amx, "avx512_core_amx"}, {dnnl_cpu_isa_avx512_core_bf16, "avx512_core_bf16"},
        {dnnl_cpu_isa_avx512_core_vnni, "avx512_core_vnni"}, {dnnl_cpu_isa_avx512_core, "avx512_core"},
        {dnnl_cpu_isa_avx512_mic_4ops, "avx512_mic_4ops"}, {dnnl_cpu_isa_avx512_mic, "avx512_mic"},
        {dnnl_cpu_isa_avx2_vnni, "avx2_vnni"}, {dnnl_cpu_isa_avx2, "avx2"},
        {dnnl_cpu_isa_avx, "avx"}, {dnnl_cpu_isa_sse41, "sse41"},
    };
    unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if ((isa & (unsigned)names[i].isa) == (unsigned)names[i].isa) return names[i].name;
    return "generic";
}

const char *kcpu_onednn_version(void)
{
    static char v[32];
    const dnnl_version_t *d = dnnl_version();
    snprintf(v, sizeof v, "%d.%d.%d", d->major, d->minor, d->patch);
    return v;
}

/* ---- fp32 -> bf16, round to nearest even ------------------------------------------
 * VCVTNEPS2BF16 treats denormal inputs as zero and flushes denormal results; the
 * scalar path does the same so both give the same bits. */
static inline kcpu_bf16_t to_bf16_scalar(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (kcpu_bf16_t)((u >> 16) | 0x40u); /* quiet NaN */
    if ((u & 0x7f800000u) == 0) return (kcpu_bf16_t)((u >> 16) & 0x8000u);       /* zero, denormal */
    u += 0x7fffu + ((u >> 16) & 1u);
    return (kcpu_bf16_t)(u >> 16);
}

__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16"))) static void to_bf16_avx512(kcpu_bf16_t *dst,
                                                                                          const float *src,
                                                                                          int64_t n)
{
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512((void *)(dst + i), (__m512i)v);
    }
    for (; i + 16 <= n; i += 16) {
        __m256bh v = _mm512_cvtneps_pbh(_mm512_loadu_ps(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)v);
    }
    if (i < n) {
        __mmask16 k = (__mmask16)((1u << (n - i)) - 1);
        __m256bh v = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(k, src + i));
        _mm256_mask_storeu_epi16(dst + i, k, (__m256i)v);
    }
}

static int have_cvt = -1; /* AVX-512 BF16 conversion instructions */
static int cvt_ok(void)
{
    if (have_cvt < 0) {
        __builtin_cpu_init();
        have_cvt = __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    }
    return have_cvt;
}

static void to_bf16_run(kcpu_bf16_t *dst, const float *src, int64_t n, int vec)
{
    if (vec) {
        to_bf16_avx512(dst, src, n);
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i] = to_bf16_scalar(src[i]);
}

void kcpu_to_bf16(kcpu_bf16_t *dst, const float *src, int64_t n)
{
    int vec = cvt_ok();
    enum { CHUNK = 1 << 14 };
    int64_t chunks = (n + CHUNK - 1) / CHUNK;
    if (chunks <= 1) {
        to_bf16_run(dst, src, n, vec);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int64_t c = 0; c < chunks; c++) {
        int64_t lo = c * CHUNK, len = n - lo < CHUNK ? n - lo : CHUNK;
        to_bf16_run(dst + lo, src + lo, len, vec);
    }
}

void kcpu_to_bf16_2d(kcpu_bf16_t *dst, int ldd, const float *src, int lds, int64_t rows, int cols)
{
    if (ldd == cols && lds == cols) {
        kcpu_to_bf16(dst, src, rows * cols);
        return;
    }
    int vec = cvt_ok();
#pragma omp parallel for schedule(static) if (rows * cols > (1 << 14))
    for (int64_t r = 0; r < rows; r++) to_bf16_run(dst + r * ldd, src + r * lds, cols, vec);
}

/* ---- cached matmul primitives ----------------------------------------------------
 * Keyed by every dimension and stride (4-D: two batch dimensions, then rows, columns),
 * whether C accumulates, and the thread count the primitive was made for. */
typedef struct {
    int64_t d[5]; /* b0, b1, M, N, K */
    int64_t as[4], bs[4], cs[4];
    int accumulate, threads;
} prim_key;

typedef struct {
    prim_key k;
    dnnl_primitive_t prim;
    dnnl_memory_t a, b, c;
} prim_entry;

struct kcpu_bf16_ctx {
    dnnl_engine_t engine;
    dnnl_stream_t stream;
    prim_entry *e;
    int n, cap;
    char impl[64];
};

static XFFL_MUST_USE xffl_status dnnl_fail(dnnl_status_t s, const char *what)
{
    return xffl_fail(XFFL_ERR_BACKEND, "onednn: %s failed (dnnl status %d)", what, (int)s);
}

xffl_status kcpu_bf16_create(kcpu_bf16_ctx **out)
{
    *out = NULL;
    if (!kcpu_bf16_available())
        return xffl_fail(XFFL_ERR_UNSUPPORTED, "bf16: this cpu has no bf16 units (avx512_bf16 or amx_bf16; onednn "
                                               "isa %s)", kcpu_bf16_isa());
    kcpu_bf16_ctx *c = calloc(1, sizeof *c);
    if (!c) return xffl_fail(XFFL_ERR_NOMEM, "bf16 context");
    dnnl_status_t s = dnnl_engine_create(&c->engine, dnnl_cpu, 0);
    if (s == dnnl_success) s = dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags);
    if (s != dnnl_success) {
        kcpu_bf16_free(c);
        return dnnl_fail(s, "engine");
    }
    *out = c;
    return XFFL_OK;
}

static void entry_free(prim_entry *e)
{
    if (e->prim) dnnl_primitive_destroy(e->prim);
    if (e->a) dnnl_memory_destroy(e->a);
    if (e->b) dnnl_memory_destroy(e->b);
    if (e->c) dnnl_memory_destroy(e->c);
}

void kcpu_bf16_free(kcpu_bf16_ctx *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) entry_free(&c->e[i]);
    free(c->e);
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->engine) dnnl_engine_destroy(c->engine);
    free(c);
}

const char *kcpu_bf16_impl(const kcpu_bf16_ctx *c) { return c->impl; }

static XFFL_MUST_USE xffl_status make_entry(kcpu_bf16_ctx *c, prim_entry *p)
{
    const prim_key *k = &p->k;
    int64_t b0 = k->d[0], b1 = k->d[1], M = k->d[2], N = k->d[3], K = k->d[4];
    dnnl_memory_desc_t ad, bd, cd;
    dnnl_dims_t adims = {b0, b1, M, K}, bdims = {b0, b1, K, N}, cdims = {b0, b1, M, N}, as = {0}, bs = {0}, cs = {0};
    memcpy(as, k->as, sizeof k->as);
    memcpy(bs, k->bs, sizeof k->bs);
    memcpy(cs, k->cs, sizeof k->cs);
    dnnl_status_t s = dnnl_memory_desc_init_by_strides(&ad, 4, adims, dnnl_bf16, as);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&bd, 4, bdims, dnnl_bf16, bs);
    if (s == dnnl_success) s = dnnl_memory_desc_init_by_strides(&cd, 4, cdims, dnnl_f32, cs);
    if (s != dnnl_success) return dnnl_fail(s, "memory descriptor");
    dnnl_matmul_desc_t md;
    s = dnnl_matmul_desc_init(&md, &ad, &bd, NULL, &cd);
    if (s != dnnl_success) return dnnl_fail(s, "matmul descriptor");
    dnnl_primitive_attr_t attr = NULL;
    dnnl_post_ops_t po = NULL;
    s = dnnl_primitive_attr_create(&attr);
    if (s == dnnl_success && k->accumulate) {
        s = dnnl_post_ops_create(&po);
        if (s == dnnl_success) s = dnnl_post_ops_append_sum(po, 1.0f);
        if (s == dnnl_success) s = dnnl_primitive_attr_set_post_ops(attr, po);
    }
    dnnl_primitive_desc_t pd = NULL;
    if (s == dnnl_success) s = dnnl_primitive_desc_create(&pd, &md, attr, c->engine, NULL);
    if (po) dnnl_post_ops_destroy(po);
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (s != dnnl_success)
        return xffl_fail(XFFL_ERR_BACKEND,
                         "onednn: no bf16 matmul for %lld x [%lld x %lld x %lld] (dnnl status %d)",
                         (long long)(b0 * b1), (long long)M, (long long)N, (long long)K, (int)s);
    const char *impl = NULL;
    if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) == dnnl_success && impl)
        snprintf(c->impl, sizeof c->impl, "%s", impl);
    s = dnnl_primitive_create(&p->prim, pd);
    if (s == dnnl_success) s = dnnl_memory_create(&p->a, &ad, c->engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&p->b, &bd, c->engine, DNNL_MEMORY_NONE);
    if (s == dnnl_success) s = dnnl_memory_create(&p->c, &cd, c->engine, DNNL_MEMORY_NONE);
    dnnl_primitive_desc_destroy(pd);
    if (s != dnnl_success) {
        entry_free(p);
        return dnnl_fail(s, "matmul primitive");
    }
    return XFFL_OK;
}

xffl_status kcpu_bf16_bgemm(kcpu_bf16_ctx *c, int b0, int b1, int M, int N, int K, const kcpu_bf16_t *A,
                            const int64_t as[4], const kcpu_bf16_t *B, const int64_t bs[4], float beta, float *C,
                            const int64_t cs[4])
{
    if (b0 <= 0 || b1 <= 0 || M <= 0 || N <= 0) return XFFL_OK;
    XFFL_RETURN_IF(K <= 0, XFFL_ERR_INTERNAL, "bf16 gemm: inner dimension %d", K);
    prim_key key;
    memset(&key, 0, sizeof key); /* compared with memcmp */
    key.d[0] = b0, key.d[1] = b1, key.d[2] = M, key.d[3] = N, key.d[4] = K;
    memcpy(key.as, as, sizeof key.as);
    memcpy(key.bs, bs, sizeof key.bs);
    memcpy(key.cs, cs, sizeof key.cs);
    key.accumulate = beta != 0.0f;
    key.threads = omp_get_max_threads();
    prim_entry *p = NULL;
    for (int i = 0; i < c->n && !p; i++)
        if (!memcmp(&c->e[i].k, &key, sizeof key)) p = &c->e[i];
    if (!p) {
        if (c->n == c->cap) {
            int cap = c->cap ? 2 * c->cap : 32;
            prim_entry *e = realloc(c->e, (size_t)cap * sizeof *e);
            if (!e) return xffl_fail(XFFL_ERR_NOMEM, "bf16 primitive cache");
            c->e = e;
            c->cap = cap;
        }
        prim_entry ne = {.k = key};
        XFFL_FORWARD(make_entry(c, &ne));
        c->e[c->n] = ne;
        p = &c->e[c->n++];
    }
    dnnl_status_t s = dnnl_memory_set_data_handle(p->a, (void *)A);
    if (s == dnnl_success) s = dnnl_memory_set_data_handle(p->b, (void *)B);
    if (s == dnnl_success) s = dnnl_memory_set_data_handle(p->c, C);
    dnnl_exec_arg_t args[3] = {{DNNL_ARG_SRC, p->a}, {DNNL_ARG_WEIGHTS, p->b}, {DNNL_ARG_DST, p->c}};
    if (s == dnnl_success) s = dnnl_primitive_execute(p->prim, c->stream, 3, args);
    if (s == dnnl_success) s = dnnl_stream_wait(c->stream);
    if (s != dnnl_success) return dnnl_fail(s, "matmul");
    return XFFL_OK;
}

xffl_status kcpu_bf16_gemm(kcpu_bf16_ctx *c, int ta, int tb, int M, int N, int K, const kcpu_bf16_t *A, int lda,
                           const kcpu_bf16_t *B, int ldb, float beta, float *C, int ldc)
{
    if (M <= 0 || N <= 0) return XFFL_OK;
    if (K <= 0) {
        if (beta == 0.0f)
            for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, (size_t)N * sizeof *C);
        return XFFL_OK;
    }
    int64_t as[4] = {(int64_t)M * K, (int64_t)M * K, ta ? 1 : lda, ta ? lda : 1};
    int64_t bs[4] = {(int64_t)K * N, (int64_t)K * N, tb ? 1 : ldb, tb ? ldb : 1};
    int64_t cs[4] = {(int64_t)M * ldc, (int64_t)M * ldc, ldc, 1};
    return kcpu_bf16_bgemm(c, 1, 1, M, N, K, A, as, B, bs, beta, C, cs);
}

/* ---- bf16 mode's element-wise ops: AVX-512 with a polynomial exp ---------------------
 * (the fp32 path keeps libm's expf and its own loops, so its bits do not change) */
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

/* e^x for x in [-87, 88]: x = n ln2 + r, |r| <= ln2/2, degree-6 Taylor (rel. error
 * < 2e-7, about 2 ulp), times 2^n */
AVX512 static inline __m512 exp512(__m512 x)
{
    x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(1.428606765330187045e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 720);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

static inline __mmask16 tailmask(int64_t left) { return (__mmask16)(left >= 16 ? 0xffff : (1u << left) - 1); }

/* one causal row: softmax of scale*row[0..n) in place, zeros to T, bf16 copy into pb */
AVX512 static void softmax_row512(float *row, kcpu_bf16_t *pb, int n, float scale)
{
    const __m512 vs = _mm512_set1_ps(scale);
    __m512 vmx = _mm512_set1_ps(-INFINITY);
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        vmx = _mm512_mask_max_ps(vmx, k, vmx, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + s), vs));
    }
    const __m512 mx = _mm512_set1_ps(_mm512_reduce_max_ps(vmx));
    __m512 vsum = _mm512_setzero_ps();
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        __m512 e = exp512(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(k, row + s), vs, mx));
        e = _mm512_maskz_mov_ps(k, e);
        _mm512_mask_storeu_ps(row + s, k, e);
        vsum = _mm512_add_ps(vsum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(vsum));
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        _mm512_mask_storeu_ps(row + s, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, row + s), inv));
    }
    to_bf16_avx512(pb, row, n); /* above the diagonal: zeros already (the callers' contract) */
}

/* dS = scale * P * (dP - sum(P dP)) over [0, n), zeros to T; bf16 copy into db */
AVX512 static void softmax_bwd_row512(const float *pr, float *dr, kcpu_bf16_t *db, int n, float scale)
{
    __m512 vd = _mm512_setzero_ps();
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        vd = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(k, pr + s), _mm512_maskz_loadu_ps(k, dr + s), vd);
    }
    const __m512 dot = _mm512_set1_ps(_mm512_reduce_add_ps(vd)), vs = _mm512_set1_ps(scale);
    for (int s = 0; s < n; s += 16) {
        __mmask16 k = tailmask(n - s);
        __m512 p = _mm512_maskz_loadu_ps(k, pr + s), d = _mm512_maskz_loadu_ps(k, dr + s);
        _mm512_mask_storeu_ps(dr + s, k, _mm512_mul_ps(_mm512_mul_ps(vs, p), _mm512_sub_ps(d, dot)));
    }
    to_bf16_avx512(db, dr, n);
}

AVX512 static void swiglu_fwd512(kcpu_bf16_t *g, const float *a, const float *b, int F)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int f = 0; f < F; f += 16) {
        __mmask16 k = tailmask(F - f);
        __m512 x = _mm512_maskz_loadu_ps(k, a + f), y = _mm512_maskz_loadu_ps(k, b + f);
        __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        __m256bh h = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_mul_ps(x, sig), y));
        _mm256_mask_storeu_epi16(g + f, k, (__m256i)h);
    }
}

AVX512 static void swiglu_bwd512(kcpu_bf16_t *da, kcpu_bf16_t *db, const float *d, const float *a, const float *b,
                                 int F)
{
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int f = 0; f < F; f += 16) {
        __mmask16 k = tailmask(F - f);
        __m512 x = _mm512_maskz_loadu_ps(k, a + f), y = _mm512_maskz_loadu_ps(k, b + f);
        __m512 dg = _mm512_maskz_loadu_ps(k, d + f);
        __m512 sig = _mm512_div_ps(one, _mm512_add_ps(one, exp512(_mm512_sub_ps(_mm512_setzero_ps(), x))));
        __m256bh hb = _mm512_cvtneps_pbh(_mm512_mul_ps(dg, _mm512_mul_ps(x, sig)));
        _mm256_mask_storeu_epi16(db + f, k, (__m256i)hb);
        __m512 dsil = _mm512_mul_ps(sig, _mm512_fmadd_ps(x, _mm512_sub_ps(one, sig), one));
        __m256bh ha = _mm512_cvtneps_pbh(_mm512_mul_ps(_mm512_mul_ps(dg, y), dsil));
        _mm256_mask_storeu_epi16(da + f, k, (__m256i)ha);
    }
}

void kcpu_bf16_swiglu13_fwd(kcpu_bf16_t *g, float *scratch, const float *h13, int N, int F)
{
    if (!cvt_ok()) {
        kcpu_swiglu13_fwd(scratch, h13, N, F);
        kcpu_to_bf16(g, scratch, (int64_t)N * F);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) swiglu_fwd512(g + (int64_t)n * F, h13 + (int64_t)n * 2 * F, h13 + (int64_t)n * 2 * F + F, F);
}

void kcpu_bf16_swiglu13_bwd(kcpu_bf16_t *dh13, float *scratch, const float *dg, const float *h13, int N, int F)
{
    if (!cvt_ok()) {
        kcpu_swiglu13_bwd(scratch, dg, h13, N, F);
        kcpu_to_bf16(dh13, scratch, (int64_t)N * 2 * F);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const float *a = h13 + (int64_t)n * 2 * F;
        kcpu_bf16_t *da = dh13 + (int64_t)n * 2 * F;
        swiglu_bwd512(da, da + F, dg + (int64_t)n * F, a, a + F, F);
    }
}

AVX512 static void rmsnorm_row512(kcpu_bf16_t *o, float *rstd, const float *x, const float *g, int D, float eps)
{
    __m512 ss = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
        __mmask16 k = tailmask(D - d);
        __m512 v = _mm512_maskz_loadu_ps(k, x + d);
        ss = _mm512_fmadd_ps(v, v, ss);
    }
    float r = 1.0f / sqrtf(_mm512_reduce_add_ps(ss) / (float)D + eps);
    *rstd = r;
    const __m512 vr = _mm512_set1_ps(r);
    for (int d = 0; d < D; d += 16) {
        __mmask16 k = tailmask(D - d);
        __m512 v = _mm512_mul_ps(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + d), vr), _mm512_maskz_loadu_ps(k, g + d));
        _mm256_mask_storeu_epi16(o + d, k, (__m256i)_mm512_cvtneps_pbh(v));
    }
}

AVX512 static void rmsnorm_bwd_row512(float *dx, const float *dy, const float *x, const float *g, float r, int D)
{
    __m512 dot = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
        __mmask16 k = tailmask(D - d);
        __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dy + d), _mm512_maskz_loadu_ps(k, g + d));
        dot = _mm512_fmadd_ps(t, _mm512_maskz_loadu_ps(k, x + d), dot);
    }
    const __m512 c = _mm512_set1_ps(_mm512_reduce_add_ps(dot) * r * r * r / (float)D), vr = _mm512_set1_ps(r);
    for (int d = 0; d < D; d += 16) {
        __mmask16 k = tailmask(D - d);
        __m512 t = _mm512_mul_ps(_mm512_mul_ps(vr, _mm512_maskz_loadu_ps(k, g + d)), _mm512_maskz_loadu_ps(k, dy + d));
        t = _mm512_fnmadd_ps(_mm512_maskz_loadu_ps(k, x + d), c, t);
        _mm512_mask_storeu_ps(dx + d, k, _mm512_add_ps(_mm512_maskz_loadu_ps(k, dx + d), t));
    }
}

/* dg[lo, hi) += sum over rows n (in order) of dy[n] x[n] r[n] */
AVX512 static void rmsnorm_dg512(float *dg, const float *dout, const float *x, const float *rstd, int N, int D, int lo,
                                 int hi)
{
    for (int d = lo; d < hi; d += 16) {
        __mmask16 k = tailmask(hi - d);
        __m512 acc = _mm512_maskz_loadu_ps(k, dg + d);
        for (int n = 0; n < N; n++) {
            __m512 t = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, dout + (int64_t)n * D + d),
                                     _mm512_maskz_loadu_ps(k, x + (int64_t)n * D + d));
            acc = _mm512_fmadd_ps(t, _mm512_set1_ps(rstd[n]), acc);
        }
        _mm512_mask_storeu_ps(dg + d, k, acc);
    }
}

void kcpu_bf16_rmsnorm_fwd(kcpu_bf16_t *out, float *scratch, float *rstd, const float *x, const float *g, int N, int D,
                           float eps)
{
    if (!cvt_ok()) {
        kcpu_rmsnorm_fwd(scratch, rstd, x, g, N, D, eps);
        kcpu_to_bf16(out, scratch, (int64_t)N * D);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) rmsnorm_row512(out + (int64_t)n * D, rstd + n, x + (int64_t)n * D, g, D, eps);
}

void kcpu_bf16_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                           int N, int D)
{
    if (!cvt_ok()) {
        kcpu_rmsnorm_bwd(dx, dg, dout, x, g, rstd, N, D);
        return;
    }
#pragma omp parallel
    {
#pragma omp for schedule(static)
        for (int n = 0; n < N; n++)
            rmsnorm_bwd_row512(dx + (int64_t)n * D, dout + (int64_t)n * D, x + (int64_t)n * D, g, rstd[n], D);
        /* columns owned by threads (16-aligned ranges), rows summed in order */
        int nt = omp_get_num_threads(), id = omp_get_thread_num(), blocks = (D + 15) / 16;
        int lo = blocks * id / nt * 16, hi = blocks * (id + 1) / nt * 16;
        if (hi > D) hi = D;
        if (lo < hi) rmsnorm_dg512(dg, dout, x, rstd, N, D, lo, hi);
    }
}

/* ---- causal GQA attention with bf16 GEMMs ------------------------------------------
 * q, k, v (and their gradients) are moved into a head-major layout, each head's T x hd
 * block contiguous and padded to hp columns (a multiple of 32, AMX's bf16 tile depth):
 * oneDNN's brgemm (AMX) takes batched matmuls only on such dense blocks, and falls back
 * to its far slower gemm:jit for the token-major [B*T, heads*hd] rows (4-6x on the small
 * model); hd = 48 padded to 64 runs faster than the ragged 48. The moves are fused with
 * the RoPE and the rounding to bf16 they replace. For kv head j, its rep query heads are
 * consecutive: Q of the group is one [rep*T, hp] matrix, so each product is one batched
 * matmul over (batch, kv head), and dK, dV sum over the group inside the GEMM. The
 * products run on the full T x T square (the causal half above the diagonal is computed
 * and ignored): causal blocks of 64 rows (one matmul per block, 5/8 of the FLOPs at T =
 * 256) measured 1.7x slower on the small model, oneDNN's per-call cost outweighing them.
 * Softmax and its backward in fp32, row by row; P is kept in fp32 for the backward and
 * rounded to bf16 (like PyTorch's autocast and the CUDA backend) for the products. */
/* 16 values of one head from column i on (zeros past hd), RoPE'd with the pair angles
 * c, s (c NULL: no rotation) as kcpu_rope computes it: a c - b s, a s + b c, s times sgn. */
AVX512 static inline __m512 head_chunk512(const float *src, int i, int hd, const float *c, const float *s, float sgn)
{
    int left = hd - i;
    __m512 x = _mm512_maskz_loadu_ps(left <= 0 ? 0 : tailmask(left), src + i);
    if (!c) return x;
    const __m512i dup = _mm512_set_epi32(7, 7, 6, 6, 5, 5, 4, 4, 3, 3, 2, 2, 1, 1, 0, 0);
    const __m512 alt = _mm512_set_ps(1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1, 1, -1);
    int pairs = left / 2;
    __mmask16 k8 = (__mmask16)(pairs <= 0 ? 0 : pairs >= 8 ? 0xff : (1u << pairs) - 1);
    __m512 cv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, c + i / 2));
    __m512 sv = _mm512_permutexvar_ps(dup, _mm512_maskz_loadu_ps(k8, s + i / 2));
    sv = _mm512_mul_ps(_mm512_mul_ps(sv, _mm512_set1_ps(sgn)), alt);
    return _mm512_add_ps(_mm512_mul_ps(x, cv), _mm512_mul_ps(_mm512_permute_ps(x, 0xB1), sv));
}

/* the same rotation in scalar code, each value rounded to bf16 into o[0, hd) */
static void head_scalar(kcpu_bf16_t *o, const float *src, int hd, const float *c, const float *s, float sgn)
{
    for (int i = 0; i + 1 < hd; i += 2) {
        float a = src[i], b = src[i + 1];
        if (c) {
            float si = sgn * s[i / 2];
            o[i] = to_bf16_scalar(a * c[i / 2] - b * si);
            o[i + 1] = to_bf16_scalar(a * si + b * c[i / 2]);
        } else {
            o[i] = to_bf16_scalar(a), o[i + 1] = to_bf16_scalar(b);
        }
    }
    if (hd % 2) o[hd - 1] = to_bf16_scalar(src[hd - 1]);
}

AVX512 static void rows_to_heads512(kcpu_bf16_t *dst, const float *src, int hd, int hp, const float *c,
                                    const float *s, float sgn)
{
    for (int i = 0; i < hp; i += 16)
        _mm256_storeu_si256((__m256i *)(dst + i), (__m256i)_mm512_cvtneps_pbh(head_chunk512(src, i, hd, c, s, sgn)));
}

AVX512 static void heads_to_rows512(kcpu_bf16_t *dst, const float *src, int hd, const float *c, const float *s,
                                    float sgn)
{
    for (int i = 0; i < hd; i += 16)
        _mm256_mask_storeu_epi16(dst + i, tailmask(hd - i),
                                 (__m256i)_mm512_cvtneps_pbh(head_chunk512(src, i, hd, c, s, sgn)));
}

/* dst [B, nh, T, hp] bf16 (zeros past hd) = rows src [B*T, ld] (nh heads of hd side by
 * side), RoPE'd first when cosv is given (sgn -1: the inverse) */
static void rows_to_heads(kcpu_bf16_t *dst, const float *src, int ld, int B, int T, int nh, int hd, int hp,
                          const float *cosv, const float *sinv, float sgn)
{
    const int vec = cvt_ok(), half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *c = cosv ? cosv + (int64_t)t * half : NULL, *sn = sinv ? sinv + (int64_t)t * half : NULL;
        for (int h = 0; h < nh; h++) {
            const float *x = src + (int64_t)bt * ld + (int64_t)h * hd;
            kcpu_bf16_t *o = dst + (((int64_t)b * nh + h) * T + t) * hp;
            if (vec) {
                rows_to_heads512(o, x, hd, hp, c, sn, sgn);
                continue;
            }
            head_scalar(o, x, hd, c, sn, sgn);
            for (int i = hd; i < hp; i++) o[i] = 0;
        }
    }
}

/* rows dst [B*T, ldd] bf16 = heads src [B, nh, T, hp] fp32 (columns past hd ignored),
 * RoPE'd first when cosv is given */
static void heads_to_rows(kcpu_bf16_t *dst, int ldd, const float *src, int B, int T, int nh, int hd, int hp,
                          const float *cosv, const float *sinv, float sgn)
{
    const int vec = cvt_ok(), half = hd / 2;
#pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) {
        int b = bt / T, t = bt % T;
        const float *c = cosv ? cosv + (int64_t)t * half : NULL, *sn = sinv ? sinv + (int64_t)t * half : NULL;
        for (int h = 0; h < nh; h++) {
            const float *x = src + (((int64_t)b * nh + h) * T + t) * hp;
            kcpu_bf16_t *o = dst + (int64_t)bt * ldd + (int64_t)h * hd;
            if (vec) {
                heads_to_rows512(o, x, hd, c, sn, sgn);
                continue;
            }
            head_scalar(o, x, hd, c, sn, sgn);
        }
    }
}

void kcpu_bf16_qkv_heads(kcpu_bf16_t *qkvh, const float *qkv, int ld, int B, int T, int H, int KV, int hd,
                         const float *cosv, const float *sinv)
{
    const int hp = kcpu_bf16_head_pad(hd);
    const int64_t qn = (int64_t)B * H * T * hp, kn = (int64_t)B * KV * T * hp;
    rows_to_heads(qkvh, qkv, ld, B, T, H, hd, hp, cosv, sinv, 1.0f);
    rows_to_heads(qkvh + qn, qkv + (int64_t)H * hd, ld, B, T, KV, hd, hp, cosv, sinv, 1.0f);
    rows_to_heads(qkvh + qn + kn, qkv + (int64_t)(H + KV) * hd, ld, B, T, KV, hd, hp, NULL, NULL, 1.0f);
}

static void softmax_rows(float *P, kcpu_bf16_t *Pb, int64_t rows, int T, float scale, int vec)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int t = (int)(i % T);
        float *row = P + i * T;
        if (vec) {
            softmax_row512(row, Pb + i * T, t + 1, scale);
            continue;
        }
        float mx = row[0] * scale;
        for (int s = 1; s <= t; s++) mx = row[s] * scale > mx ? row[s] * scale : mx;
        float sum = 0;
        for (int s = 0; s <= t; s++) {
            row[s] = expf(row[s] * scale - mx);
            sum += row[s];
        }
        float inv = 1.0f / sum;
        for (int s = 0; s <= t; s++) row[s] *= inv;
        to_bf16_run(Pb + i * T, row, t + 1, 0);
    }
}

static void softmax_bwd_rows(const float *P, float *dP, kcpu_bf16_t *dSb, int64_t rows, int T, float scale, int vec)
{
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < rows; i++) {
        int t = (int)(i % T);
        const float *pr = P + i * T;
        float *dr = dP + i * T, dot = 0;
        if (vec) {
            softmax_bwd_row512(pr, dr, dSb + i * T, t + 1, scale);
            continue;
        }
        for (int s = 0; s <= t; s++) dot += pr[s] * dr[s];
        for (int s = 0; s <= t; s++) dr[s] = scale * pr[s] * (dr[s] - dot);
        to_bf16_run(dSb + i * T, dr, t + 1, 0);
    }
}

xffl_status kcpu_bf16_attention_fwd(kcpu_bf16_ctx *c, kcpu_bf16_t *outb, int ldo, float *O, float *P,
                                    const kcpu_bf16_t *qkvh, int B, int T, int H, int KV, int hd, kcpu_bf16_t *Pb)
{
    const int64_t rep = H / KV, hp = kcpu_bf16_head_pad(hd), TT = (int64_t)T * T;
    const kcpu_bf16_t *qh = qkvh, *kh = qh + (int64_t)B * H * T * hp, *vh = kh + (int64_t)B * KV * T * hp;
    const int64_t qs[4] = {H * T * hp, rep * T * hp, hp, 1}; /* Q of a group: [rep*T, hp]; O, dO alike */
    const int64_t ks[4] = {KV * T * hp, T * hp, hp, 1};      /* K, V: [T, hp] */
    const int64_t kts[4] = {KV * T * hp, T * hp, 1, hp};     /* K^T, V^T */
    const int64_t ps[4] = {H * TT, rep * TT, T, 1};          /* S, P of a group: [rep*T, T] */
    const int RT = (int)(rep * T), HP = (int)hp;
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, T, HP, qh, qs, kh, kts, 0.0f, P, ps)));
    KPROF("softmax", softmax_rows(P, Pb, (int64_t)B * H * T, T, 1.0f / sqrtf((float)hd), cvt_ok()));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, HP, T, Pb, ps, vh, ks, 0.0f, O, qs)));
    KPROF("att_move", heads_to_rows(outb, ldo, O, B, T, H, hd, HP, NULL, NULL, 1.0f));
    return XFFL_OK;
}

xffl_status kcpu_bf16_attention_bwd(kcpu_bf16_ctx *c, kcpu_bf16_t *dqkvb, int ld, float *dh, const float *dout,
                                    int ldo, const float *P, const kcpu_bf16_t *Pb, const kcpu_bf16_t *qkvh, int B,
                                    int T, int H, int KV, int hd, const float *cosv, const float *sinv,
                                    kcpu_bf16_t *dob, kcpu_bf16_t *dSb, float *dP)
{
    const int64_t rep = H / KV, hp = kcpu_bf16_head_pad(hd), TT = (int64_t)T * T, rows = (int64_t)B * H * T;
    const int64_t qn = (int64_t)B * H * T * hp, kn = (int64_t)B * KV * T * hp;
    const kcpu_bf16_t *qh = qkvh, *kh = qh + qn, *vh = kh + kn;
    float *dq = dh, *dk = dh + qn, *dv = dk + kn;
    const int64_t qs[4] = {H * T * hp, rep * T * hp, hp, 1}, ks[4] = {KV * T * hp, T * hp, hp, 1};
    const int64_t kts[4] = {KV * T * hp, T * hp, 1, hp};
    const int64_t ps[4] = {H * TT, rep * TT, T, 1}, pts[4] = {H * TT, rep * TT, 1, T}; /* P, dS; transposed */
    const int RT = (int)(rep * T), HP = (int)hp;
    KPROF("att_move", rows_to_heads(dob, dout, ldo, B, T, H, hd, HP, NULL, NULL, 1.0f));
    /* dV = P^T dO (summed over the group inside the product);  dP = dO V^T */
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, T, HP, RT, Pb, pts, dob, qs, 0.0f, dv, ks)));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, T, HP, dob, qs, vh, kts, 0.0f, dP, ps)));
    KPROF("softmax", softmax_bwd_rows(P, dP, dSb, rows, T, 1.0f / sqrtf((float)hd), cvt_ok()));
    /* dQ = dS K;  dK = dS^T Q */
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, RT, HP, T, dSb, ps, kh, ks, 0.0f, dq, qs)));
    KPROF("att_gemm", XFFL_FORWARD(kcpu_bf16_bgemm(c, B, KV, T, HP, RT, dSb, pts, qh, qs, 0.0f, dk, ks)));
    /* back to rows, through RoPE's inverse for q and k (dob is not read from here on) */
    KPROF("att_move", heads_to_rows(dqkvb, ld, dq, B, T, H, hd, HP, cosv, sinv, -1.0f));
    KPROF("att_move", heads_to_rows(dqkvb + (int64_t)H * hd, ld, dk, B, T, KV, hd, HP, cosv, sinv, -1.0f));
    KPROF("att_move", heads_to_rows(dqkvb + (int64_t)(H + KV) * hd, ld, dv, B, T, KV, hd, HP, NULL, NULL, 1.0f));
    return XFFL_OK;
}
