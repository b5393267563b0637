/* Every CUDA op against the double-precision CPU reference (kernels/cpu/ref.h).
 * Tolerances (max |gpu - ref| / max |ref|): fp32 ops 1e-4; GEMM-based ops in bf16 mode
 * 3e-2 (bf16 keeps 8 mantissa bits: 4e-3 per operand, summed over K terms). */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/ref.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/model.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test.h"

#define TOL32 1e-4
#define TOL16 3e-2

/* ---- small device-memory helpers (a test frees everything it allocated) ---------------- */

typedef struct {
    void *p[32];
    int n;
} pool;

static void *dalloc(pool *pl, size_t bytes)
{
    void *p = NULL;
    if (pl->n >= 32 || cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) return NULL;
    cudaMemset(p, 0, bytes ? bytes : 4);
    return pl->p[pl->n++] = p;
}

static void pool_free(pool *pl)
{
    for (int i = 0; i < pl->n; i++) cudaFree(pl->p[i]);
    pl->n = 0;
}

static float *up(pool *pl, const float *h, int64_t n)
{
    float *d = dalloc(pl, (size_t)n * 4);
    if (d) cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice);
    return d;
}

static int32_t *up_i(pool *pl, const int32_t *h, int64_t n)
{
    int32_t *d = dalloc(pl, (size_t)n * 4);
    if (d) cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice);
    return d;
}

static float *down(const float *d, int64_t n)
{
    float *h = malloc((size_t)n * 4);
    cudaDeviceSynchronize();
    if (h) cudaMemcpy(h, d, (size_t)n * 4, cudaMemcpyDeviceToHost);
    return h;
}

static double *todbl(const float *x, int64_t n)
{
    double *d = malloc((size_t)n * 8);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static float *rnd(int64_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc((size_t)n * 4);
    gt_fill(x, n, seed, lo, hi);
    return x;
}

#define CHECK_ERR(got, ref, n, tol, what)                                                          \
    do {                                                                                           \
        double e_ = gt_rel_err_d((got), (ref), (n));                                               \
        GT_CHECK(e_ < (tol), "%s: rel err %.3g (limit %.0e)", (what), e_, (double)(tol));          \
    } while (0)

#define LAUNCH(expr) GT_CHECK((expr) == 0, "%s: launch failed", #expr)

void test_op_embedding(void)
{
    enum { N = 96, D = 80, V = 50 };
    pool pl = {0};
    int32_t tok[N];
    gt_tokens(tok, N, 1, V);
    tok[5] = tok[6] = tok[7]; /* repeated rows sum in the backward */
    float *E = rnd((int64_t)V * D, 2, -1, 1), *dout = rnd((int64_t)N * D, 3, -1, 1);
    float *dE0 = rnd((int64_t)V * D, 4, -1, 1);
    float *dOut = dalloc(&pl, N * D * 4), *dEd = up(&pl, dE0, V * D);
    int32_t *dtok = up_i(&pl, tok, N);
    LAUNCH(kcu_embedding_fwd(dOut, dtok, up(&pl, E, V * D), N, D, V, NULL));
    LAUNCH(kcu_embedding_bwd(dEd, dtok, up(&pl, dout, N * D), N, D, V, NULL));
    double *rE = todbl(E, V * D), *rOut = calloc(N * D, 8), *rdE = todbl(dE0, V * D), *rdout = todbl(dout, N * D);
    kref_embedding_fwd(rOut, tok, rE, N, D);
    kref_embedding_bwd(rdE, tok, rdout, N, D);
    float *out = down(dOut, N * D), *gE = down(dEd, V * D);
    CHECK_ERR(out, rOut, N * D, 1e-7, "embedding forward");
    CHECK_ERR(gE, rdE, V * D, TOL32, "embedding backward");
    free(E), free(dout), free(dE0), free(rE), free(rOut), free(rdE), free(rdout), free(out), free(gE);
    pool_free(&pl);
}

void test_op_rmsnorm(void)
{
    enum { N = 37, D = 288 };
    const float eps = 1e-5f;
    pool pl = {0};
    float *x = rnd(N * D, 5, -2, 2), *g = rnd(D, 6, 0.5f, 1.5f), *dout = rnd(N * D, 7, -1, 1);
    float *dx0 = rnd(N * D, 8, -1, 1), *dg0 = rnd(D, 9, -1, 1); /* both accumulate */
    float *dX = up(&pl, x, N * D), *dG = up(&pl, g, D), *dO = dalloc(&pl, N * D * 4), *dR = dalloc(&pl, N * 4);
    float *dDx = up(&pl, dx0, N * D), *dDg = up(&pl, dg0, D);
    LAUNCH(kcu_rmsnorm_fwd(dO, dR, dX, dG, N, D, eps, NULL));
    LAUNCH(kcu_rmsnorm_bwd(dDx, dDg, up(&pl, dout, N * D), dX, dG, dR, N, D, NULL));
    double *rx = todbl(x, N * D), *rg = todbl(g, D), *ro = calloc(N * D, 8), *rr = calloc(N, 8);
    double *rdx = todbl(dx0, N * D), *rdg = todbl(dg0, D), *rdo = todbl(dout, N * D);
    kref_rmsnorm_fwd(ro, rr, rx, rg, N, D, eps);
    kref_rmsnorm_bwd(rdx, rdg, rdo, rx, rg, N, D, eps);
    float *o = down(dO, N * D), *r = down(dR, N), *gdx = down(dDx, N * D), *gdg = down(dDg, D);
    CHECK_ERR(o, ro, N * D, TOL32, "rmsnorm forward");
    CHECK_ERR(r, rr, N, TOL32, "rmsnorm rstd");
    CHECK_ERR(gdx, rdx, N * D, TOL32, "rmsnorm backward dx (accumulated)");
    CHECK_ERR(gdg, rdg, D, TOL32, "rmsnorm backward dg (accumulated)");
    free(x), free(g), free(dout), free(dx0), free(dg0), free(rx), free(rg), free(ro), free(rr), free(rdx), free(rdg);
    free(rdo), free(o), free(r), free(gdx), free(gdg);
    pool_free(&pl);
}

void test_op_rope(void)
{
    enum { B = 2, T = 70, NH = 3, HD = 16, n = B * T * NH * HD };
    pool pl = {0};
    float *x = rnd(n, 10, -1, 1);
    float *dX = up(&pl, x, n), *dY = up(&pl, x, n);
    LAUNCH(kcu_rope(dX, B, T, NH, HD, 10000.0f, 0, NULL));
    LAUNCH(kcu_rope(dY, B, T, NH, HD, 10000.0f, 1, NULL));
    double *r = todbl(x, n), *ri = todbl(x, n);
    kref_rope(r, B, T, NH, HD, 10000.0, 0);
    kref_rope(ri, B, T, NH, HD, 10000.0, 1);
    float *gx = down(dX, n), *gy = down(dY, n);
    CHECK_ERR(gx, r, n, TOL32, "rope forward");
    CHECK_ERR(gy, ri, n, TOL32, "rope inverse (backward)");
    free(x), free(r), free(ri), free(gx), free(gy);
    pool_free(&pl);
}

/* Attention through kcu_attention_fwd/bwd (the GEMM path the model uses), both precisions. */
static void attention_case(kcu_precision prec, double tol)
{
    enum { B = 2, T = 33, H = 4, KV = 2, HD = 16, NQ = B * T * H * HD, NK = B * T * KV * HD, NP = B * H * T * T };
    pool pl = {0};
    cublasHandle_t h = NULL;
    GT_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    if (!h) return;
    cublasSetMathMode(h, prec == KCU_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
    kcu_gemm g = {h, NULL, prec, dalloc(&pl, NP * 2), dalloc(&pl, NP * 2), NP};
    float *q = rnd(NQ, 11, -1, 1), *k = rnd(NK, 12, -1, 1), *v = rnd(NK, 13, -1, 1), *dout = rnd(NQ, 14, -1, 1);
    float *dq = dalloc(&pl, NQ * 4), *dk = dalloc(&pl, NK * 4), *dv = dalloc(&pl, NK * 4), *out = dalloc(&pl, NQ * 4);
    float *qh = dalloc(&pl, NQ * 4), *kh = dalloc(&pl, NQ * 4), *vh = dalloc(&pl, NQ * 4), *P = dalloc(&pl, NP * 4);
    float *dP = dalloc(&pl, NP * 4), *s1 = dalloc(&pl, NQ * 4), *s2 = dalloc(&pl, NQ * 4), *s3 = dalloc(&pl, NQ * 4);
    xffl_status s = kcu_attention_fwd(&g, out, qh, kh, vh, P, s1, up(&pl, q, NQ), up(&pl, k, NK), up(&pl, v, NK), B, T,
                                      H, KV, HD);
    if (s == XFFL_OK)
        s = kcu_attention_bwd(&g, dq, dk, dv, up(&pl, dout, NQ), qh, kh, vh, P, dP, s1, s2, s3, B, T, H, KV, HD);
    GT_CHECK(s == XFFL_OK, "attention: %s", xffl_errmsg());
    double *rq = todbl(q, NQ), *rk = todbl(k, NK), *rv = todbl(v, NK), *rdo = todbl(dout, NQ);
    double *ro = calloc(NQ, 8), *rP = calloc(NP, 8), *rdq = calloc(NQ, 8), *rdk = calloc(NK, 8), *rdv = calloc(NK, 8);
    kref_attention_fwd(ro, rP, rq, rk, rv, B, T, H, KV, HD);
    kref_attention_bwd(rdq, rdk, rdv, rdo, rq, rk, rv, B, T, H, KV, HD);
    float *go = down(out, NQ), *gP = down(P, NP), *gq = down(dq, NQ), *gk = down(dk, NK), *gv = down(dv, NK);
    const char *pn = prec == KCU_FP32 ? "fp32" : "bf16";
    char what[64];
    snprintf(what, sizeof what, "attention forward (%s)", pn);
    CHECK_ERR(go, ro, NQ, tol, what);
    snprintf(what, sizeof what, "attention probabilities (%s)", pn);
    CHECK_ERR(gP, rP, NP, tol, what);
    snprintf(what, sizeof what, "attention dq (%s)", pn);
    CHECK_ERR(gq, rdq, NQ, tol, what);
    snprintf(what, sizeof what, "attention dk, GQA group sum (%s)", pn);
    CHECK_ERR(gk, rdk, NK, tol, what);
    snprintf(what, sizeof what, "attention dv, GQA group sum (%s)", pn);
    CHECK_ERR(gv, rdv, NK, tol, what);
    free(q), free(k), free(v), free(dout), free(rq), free(rk), free(rv), free(rdo), free(ro), free(rP), free(rdq);
    free(rdk), free(rdv), free(go), free(gP), free(gq), free(gk), free(gv);
    cublasDestroy(h);
    pool_free(&pl);
}

void test_op_attention(void)
{
    attention_case(KCU_FP32, TOL32);
    attention_case(KCU_BF16, TOL16);
}

/* y = x W^T and its backward through kcu_mm, as the model's linear layers call it. */
static void matmul_case(kcu_precision prec, double tol)
{
    enum { N = 65, I = 96, O = 136 };
    pool pl = {0};
    cublasHandle_t h = NULL;
    GT_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    if (!h) return;
    cublasSetMathMode(h, prec == KCU_FP32 ? CUBLAS_PEDANTIC_MATH : CUBLAS_DEFAULT_MATH);
    enum { STAGE = O * I > N * O ? (O * I > N * I ? O * I : N * I) : (N * O > N * I ? N * O : N * I) };
    kcu_gemm g = {h, NULL, prec, dalloc(&pl, STAGE * 2), dalloc(&pl, STAGE * 2), STAGE}; /* largest operand */
    float *x = rnd(N * I, 15, -1, 1), *W = rnd(O * I, 16, -1, 1), *dy = rnd(N * O, 17, -1, 1);
    float *dW0 = rnd(O * I, 18, -1, 1);
    float *dx = up(&pl, x, N * I), *dWt = up(&pl, W, O * I), *ddy = up(&pl, dy, N * O);
    float *y = dalloc(&pl, N * O * 4), *gx = dalloc(&pl, N * I * 4), *gW = up(&pl, dW0, O * I);
    xffl_status s = kcu_mm(&g, "y", 0, 1, N, O, I, dx, NULL, dWt, NULL, y, 0.0f, 1, 0, 0, 0);
    if (s == XFFL_OK) s = kcu_mm(&g, "dx", 0, 0, N, I, O, ddy, NULL, dWt, NULL, gx, 0.0f, 1, 0, 0, 0);
    if (s == XFFL_OK) s = kcu_mm(&g, "dW", 1, 0, O, I, N, ddy, NULL, dx, NULL, gW, 1.0f, 1, 0, 0, 0);
    GT_CHECK(s == XFFL_OK, "matmul: %s", xffl_errmsg());
    double *rx = todbl(x, N * I), *rW = todbl(W, O * I), *rdy = todbl(dy, N * O), *ry = calloc(N * O, 8);
    double *rgx = calloc(N * I, 8), *rgW = todbl(dW0, O * I);
    kref_matmul_fwd(ry, rx, rW, N, I, O);
    kref_matmul_bwd(rgx, rgW, rdy, rx, rW, N, I, O);
    float *hy = down(y, N * O), *hgx = down(gx, N * I), *hgW = down(gW, O * I);
    CHECK_ERR(hy, ry, N * O, tol, prec == KCU_FP32 ? "matmul forward (fp32)" : "matmul forward (bf16)");
    CHECK_ERR(hgx, rgx, N * I, tol, prec == KCU_FP32 ? "matmul dx (fp32)" : "matmul dx (bf16)");
    CHECK_ERR(hgW, rgW, O * I, tol, prec == KCU_FP32 ? "matmul dW += (fp32)" : "matmul dW += (bf16)");
    free(x), free(W), free(dy), free(dW0), free(rx), free(rW), free(rdy), free(ry), free(rgx), free(rgW);
    free(hy), free(hgx), free(hgW);
    cublasDestroy(h);
    pool_free(&pl);
}

void test_op_matmul(void)
{
    matmul_case(KCU_FP32, TOL32);
    matmul_case(KCU_BF16, TOL16);
}

void test_op_swiglu(void)
{
    enum { n = 5000 };
    pool pl = {0};
    float *a = rnd(n, 19, -6, 6), *b = rnd(n, 20, -2, 2), *dg = rnd(n, 21, -1, 1);
    float *da = up(&pl, a, n), *db = up(&pl, b, n), *g = dalloc(&pl, n * 4), *ga = dalloc(&pl, n * 4),
          *gb = dalloc(&pl, n * 4);
    LAUNCH(kcu_swiglu_fwd(g, da, db, n, NULL));
    LAUNCH(kcu_swiglu_bwd(ga, gb, up(&pl, dg, n), da, db, n, NULL));
    double *ra = todbl(a, n), *rb = todbl(b, n), *rdg = todbl(dg, n), *rg = calloc(n, 8), *rga = calloc(n, 8),
           *rgb = calloc(n, 8);
    kref_swiglu_fwd(rg, ra, rb, n);
    kref_swiglu_bwd(rga, rgb, rdg, ra, rb, n);
    float *hg = down(g, n), *hga = down(ga, n), *hgb = down(gb, n);
    CHECK_ERR(hg, rg, n, TOL32, "swiglu forward");
    CHECK_ERR(hga, rga, n, TOL32, "swiglu da");
    CHECK_ERR(hgb, rgb, n, TOL32, "swiglu db");
    free(a), free(b), free(dg), free(ra), free(rb), free(rdg), free(rg), free(rga), free(rgb), free(hg), free(hga);
    free(hgb);
    pool_free(&pl);
}

void test_op_xent(void)
{
    enum { N = 41, V = 300 };
    pool pl = {0};
    float *l = rnd(N * V, 22, -8, 8);
    int32_t tg[N];
    gt_tokens(tg, N, 23, V);
    float *dl = up(&pl, l, N * V), *loss = dalloc(&pl, N * 4), *lse = dalloc(&pl, N * 4), *dd = dalloc(&pl, N * V * 4);
    int32_t *dt = up_i(&pl, tg, N);
    LAUNCH(kcu_xent_fwd(loss, lse, dl, dt, N, V, NULL));
    LAUNCH(kcu_xent_bwd(dd, dl, lse, dt, N, V, 1.0f / N, NULL));
    double *rl = todbl(l, N * V), *rd = calloc(N * V, 8);
    double rloss = kref_xent_fwd(rl, tg, N, V);
    kref_xent_bwd(rd, rl, tg, N, V);
    float *hl = down(loss, N), *hd = down(dd, N * V);
    double mean = 0;
    for (int i = 0; i < N; i++) mean += hl[i];
    mean /= N;
    GT_CHECK(fabs(mean - rloss) / fabs(rloss) < TOL32, "cross-entropy mean %.8g vs reference %.8g", mean, rloss);
    CHECK_ERR(hd, rd, N * V, TOL32, "cross-entropy backward");
    free(l), free(rl), free(rd), free(hl), free(hd);
    pool_free(&pl);
}

/* The element-wise update, then a whole model step: global-norm clipping and no weight
 * decay on norm gains (the CKPT_KIND_NORM tensors). */
void test_op_adamw(void)
{
    enum { n = 3000 };
    const double lr = 3e-3, b1 = 0.9, b2 = 0.95, eps = 1e-8, wd = 0.1;
    pool pl = {0};
    float *p = rnd(n, 24, -1, 1), *g1 = rnd(n, 25, -1, 1), *g2 = rnd(n, 26, -1, 1);
    float *dp = up(&pl, p, n), *dm = dalloc(&pl, n * 4), *dv = dalloc(&pl, n * 4);
    double *rp = todbl(p, n), *rm = calloc(n, 8), *rv = calloc(n, 8), *rg1 = todbl(g1, n), *rg2 = todbl(g2, n);
    for (int step = 1; step <= 2; step++) {
        float *g = step == 1 ? g1 : g2;
        float bc1 = 1.0f - powf((float)b1, (float)step), bc2 = 1.0f - powf((float)b2, (float)step);
        LAUNCH(kcu_adamw(dp, NULL, up(&pl, g, n), dm, dv, n, (float)lr, (float)b1, (float)b2, (float)eps, (float)wd,
                         bc1, bc2, 1.0f, NULL));
        kref_adamw(rp, step == 1 ? rg1 : rg2, rm, rv, n, lr, b1, b2, eps, wd, step);
    }
    float *hp = down(dp, n);
    CHECK_ERR(hp, rp, n, TOL32, "adamw element-wise, 2 steps");
    free(p), free(g1), free(g2), free(rp), free(rm), free(rv), free(rg1), free(rg2), free(hp);
    pool_free(&pl);

    /* model step with clipping */
    ckpt_model_config cfg;
    GT_OK(ckpt_model_preset("tiny", 0, &cfg));
    kcu_model *m = NULL;
    GT_OK(kcu_model_create(&cfg, 1, 8, 0, KCU_FP32, &m));
    const ckpt_param_table *t = kcu_model_table(m);
    float *params = gt_init_params(t, 3), *grads = rnd(t->total, 27, -1, 1), *after = malloc((size_t)t->total * 4);
    double norm = 0;
    for (int64_t i = 0; i < t->total; i++) norm += (double)grads[i] * grads[i];
    norm = sqrt(norm);
    kcu_adamw_args a = {(float)lr, (float)b1, (float)b2, (float)eps, (float)wd, (float)(norm / 4)};
    float got_norm = 0;
    xffl_status s = kcu_set_params(m, params);
    if (s == XFFL_OK) s = kcu_set_grads(m, grads);
    if (s == XFFL_OK) s = kcu_adamw_step(m, &a, &got_norm);
    if (s == XFFL_OK) s = kcu_get_params(m, after);
    GT_CHECK(s == XFFL_OK, "model adamw step: %s", xffl_errmsg());
    GT_CHECK(fabs(got_norm - norm) / norm < 1e-5, "pre-clip grad norm %.8g, expected %.8g", got_norm, norm);
    double *r = todbl(params, t->total), *mm = calloc((size_t)t->total, 8), *vv = calloc((size_t)t->total, 8);
    double *gc = calloc((size_t)t->total, 8);
    for (int64_t i = 0; i < t->total; i++) gc[i] = grads[i] * 0.25; /* clipped to a quarter of its norm */
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *pp = &t->params[i];
        kref_adamw(r + pp->offset, gc + pp->offset, mm + pp->offset, vv + pp->offset, pp->numel, lr, b1, b2, eps,
                   pp->kind == CKPT_KIND_NORM ? 0.0 : wd, 1);
    }
    CHECK_ERR(after, r, t->total, TOL32, "model adamw step: clip to norm/4, no decay on norm gains");
    free(params), free(grads), free(after), free(r), free(mm), free(vv), free(gc);
    kcu_model_free(m);
}

/* Host round-to-nearest-even, the rule __float2bfloat16_rn follows (finite inputs). */
static float bf16_rne(float x)
{
    uint32_t u;
    memcpy(&u, &x, 4);
    u = (u + 0x7fffu + ((u >> 16) & 1u)) & 0xffff0000u;
    memcpy(&x, &u, 4);
    return x;
}

void test_op_bf16_cast(void)
{
    /* hand-checked: ties go to the even mantissa; 65504 rounds up to 2^16 */
    const float in[] = {1.0f, -2.5f, 1.00390625f, 1.01171875f, 3.14159265f, 65504.0f, 1e-30f, -7.3e5f, 0.0f};
    const float want[] = {1.0f, -2.5f, 1.0f, 1.015625f, 3.140625f, 65536.0f};
    enum { n = sizeof in / sizeof in[0], nw = sizeof want / sizeof want[0] };
    for (int i = 0; i < nw; i++)
        GT_CHECK(bf16_rne(in[i]) == want[i], "host rounding of %.9g gave %.9g", in[i], bf16_rne(in[i]));
    pool pl = {0};
    uint16_t *h = dalloc(&pl, n * 2);
    float *back = dalloc(&pl, n * 4);
    LAUNCH(kcu_to_bf16(h, up(&pl, in, n), n, NULL));
    LAUNCH(kcu_from_bf16(back, h, n, NULL));
    float *got = down(back, n);
    for (int i = 0; i < n; i++)
        GT_CHECK(got[i] == bf16_rne(in[i]), "bf16(%.9g) = %.9g, expected %.9g", in[i], got[i], bf16_rne(in[i]));
    free(got);
    /* the 4-wide path (aligned) with a tail, and the one-wide path (source off by one float) */
    enum { big = 4099 };
    float *src = malloc(big * sizeof *src);
    for (int i = 0; i < big; i++) src[i] = (float)((i * 2654435761u) % 100003) * 1e-3f - 50.0f + (float)i * 1e-7f;
    float *dsrc = up(&pl, src, big);
    uint16_t *h2 = dalloc(&pl, big * 2);
    float *back2 = dalloc(&pl, big * 4);
    for (int off = 0; off < 2; off++) {
        int m = big - off;
        LAUNCH(kcu_to_bf16(h2, dsrc + off, m, NULL));
        LAUNCH(kcu_from_bf16(back2, h2, m, NULL));
        float *g2 = down(back2, m);
        int bad = 0;
        for (int i = 0; i < m; i++) bad += g2[i] != bf16_rne(src[off + i]);
        GT_CHECK(bad == 0, "%d of %d values cast wrong (source offset %d floats)", bad, m, off);
        free(g2);
    }
    free(src);
    pool_free(&pl);
}
