/* bf16 GEMMs through oneDNN's matmul primitive (contract in bf16.h). */
#include "kernels/cpu/bf16.h"
#include "kernels/cpu/bf16_simd.h"
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

/* ---- fp32 -> bf16, round to nearest even (the roundings: bf16_simd.h) -------------- */
static int have_cvt = -1;
int kcpu_bf16_cvt_ok(void)
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

void kcpu_to_bf16_serial(kcpu_bf16_t *dst, const float *src, int64_t n) { to_bf16_run(dst, src, n, kcpu_bf16_cvt_ok()); }

void kcpu_to_bf16(kcpu_bf16_t *dst, const float *src, int64_t n)
{
    int vec = kcpu_bf16_cvt_ok();
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
    int vec = kcpu_bf16_cvt_ok();
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
    if (!kcpu_bf16_cvt_ok()) {
        kcpu_swiglu13_fwd(scratch, h13, N, F);
        kcpu_to_bf16(g, scratch, (int64_t)N * F);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) swiglu_fwd512(g + (int64_t)n * F, h13 + (int64_t)n * 2 * F, h13 + (int64_t)n * 2 * F + F, F);
}

void kcpu_bf16_swiglu13_bwd(kcpu_bf16_t *dh13, float *scratch, const float *dg, const float *h13, int N, int F)
{
    if (!kcpu_bf16_cvt_ok()) {
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

AVX512 static void rmsnorm_row512(kcpu_bf16_t *o, float *rstd, float *xcopy, const float *x, const float *g, int D,
                                  float eps)
{
    __m512 ss = _mm512_setzero_ps();
    for (int d = 0; d < D; d += 16) {
        __mmask16 k = tailmask(D - d);
        __m512 v = _mm512_maskz_loadu_ps(k, x + d);
        ss = _mm512_fmadd_ps(v, v, ss);
        if (xcopy) _mm512_mask_storeu_ps(xcopy + d, k, v);
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

void kcpu_bf16_rmsnorm_fwd(kcpu_bf16_t *out, float *scratch, float *rstd, float *xcopy, const float *x, const float *g,
                           int N, int D, float eps)
{
    if (!kcpu_bf16_cvt_ok()) {
        kcpu_rmsnorm_fwd(scratch, rstd, x, g, N, D, eps);
        kcpu_to_bf16(out, scratch, (int64_t)N * D);
        if (xcopy) memcpy(xcopy, x, (size_t)N * D * sizeof *x);
        return;
    }
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        rmsnorm_row512(out + (int64_t)n * D, rstd + n, xcopy ? xcopy + (int64_t)n * D : NULL, x + (int64_t)n * D, g, D,
                       eps);
}

void kcpu_bf16_rmsnorm_bwd(float *dx, float *dg, const float *dout, const float *x, const float *g, const float *rstd,
                           int N, int D)
{
    if (!kcpu_bf16_cvt_ok()) {
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
