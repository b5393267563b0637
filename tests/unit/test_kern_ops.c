/* Reference ops against finite differences (double), fast fp32 ops against the
 * reference ops, RoPE against an explicit complex rotation.
 * Tolerances: finite differences h = 1e-5 (central), relative error <= 1e-6 of the
 * largest gradient; fast ops: max |fast - ref| <= 2e-5 * max(1, max |ref|) (fp32 sums of
 * at most a few hundred terms). */
#include <CUnit/CUnit.h>
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/ops.h"
#include "kernels/cpu/ref.h"
#include "kernels/shard.h"

static uint64_t rng = 88172645463325252ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}
static void fill(double *x, int64_t n, double scale)
{
    for (int64_t i = 0; i < n; i++) x[i] = (2 * urand() - 1) * scale;
}
static float *tof(const double *x, int64_t n)
{
    float *f = malloc((size_t)n * sizeof *f);
    for (int64_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}
static double maxabs(const double *x, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(x[i]) > m ? fabs(x[i]) : m;
    return m;
}
/* max |f - r| relative to max(1, max|r|) */
static double fdiff(const float *f, const double *r, int64_t n)
{
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(f[i] - r[i]) > m ? fabs(f[i] - r[i]) : m;
    double s = maxabs(r, n);
    return m / (s > 1 ? s : 1);
}

/* The op as a scalar function of one input array: L = sum(out * R). */
typedef double (*scalar_fn)(void *ctx);

/* Central differences of f w.r.t. x[0..n) against the analytic gradient g. */
static double fd_check(scalar_fn f, void *ctx, double *x, const double *g, int64_t n)
{
    const double h = 1e-5;
    double worst = 0, scale = maxabs(g, n);
    for (int64_t i = 0; i < n; i++) {
        double keep = x[i];
        x[i] = keep + h;
        double lp = f(ctx);
        x[i] = keep - h;
        double lm = f(ctx);
        x[i] = keep;
        double num = (lp - lm) / (2 * h), err = fabs(num - g[i]) / (scale > 1e-3 ? scale : 1e-3);
        worst = err > worst ? err : worst;
    }
    return worst;
}

static double dot(const double *a, const double *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

/* ---- rmsnorm ---- */
enum { RN = 6, RD = 16 };
static struct {
    double x[RN * RD], g[RD], R[RN * RD], out[RN * RD];
} rn;
static double rn_loss(void *c)
{
    (void)c;
    kref_rmsnorm_fwd(rn.out, NULL, rn.x, rn.g, RN, RD, 1e-5);
    return dot(rn.out, rn.R, RN * RD);
}
static void test_rmsnorm(void)
{
    fill(rn.x, RN * RD, 1);
    fill(rn.g, RD, 1);
    fill(rn.R, RN * RD, 1);
    double dx[RN * RD] = {0}, dg[RD] = {0};
    kref_rmsnorm_bwd(dx, dg, rn.R, rn.x, rn.g, RN, RD, 1e-5);
    CU_ASSERT(fd_check(rn_loss, NULL, rn.x, dx, RN * RD) < 1e-6);
    CU_ASSERT(fd_check(rn_loss, NULL, rn.g, dg, RD) < 1e-6);
    /* fast */
    float *fx = tof(rn.x, RN * RD), *fg = tof(rn.g, RD), *fR = tof(rn.R, RN * RD), fo[RN * RD], frs[RN];
    float fdx[RN * RD] = {0}, fdg[RD] = {0};
    kcpu_rmsnorm_fwd(fo, frs, fx, fg, RN, RD, 1e-5f);
    rn_loss(NULL);
    CU_ASSERT(fdiff(fo, rn.out, RN * RD) < 2e-5);
    kcpu_rmsnorm_bwd(fdx, fdg, fR, fx, fg, frs, RN, RD);
    CU_ASSERT(fdiff(fdx, dx, RN * RD) < 2e-5);
    CU_ASSERT(fdiff(fdg, dg, RD) < 2e-5);
    free(fx), free(fg), free(fR);
}

/* ---- matmul ---- */
enum { MN = 5, MK = 7, MO = 6 };
static struct {
    double x[MN * MK], W[MO * MK], R[MN * MO], out[MN * MO];
} mm;
static double mm_loss(void *c)
{
    (void)c;
    kref_matmul_fwd(mm.out, mm.x, mm.W, MN, MK, MO);
    return dot(mm.out, mm.R, MN * MO);
}
static void test_matmul(void)
{
    fill(mm.x, MN * MK, 1);
    fill(mm.W, MO * MK, 1);
    fill(mm.R, MN * MO, 1);
    double dx[MN * MK] = {0}, dW[MO * MK] = {0};
    kref_matmul_bwd(dx, dW, mm.R, mm.x, mm.W, MN, MK, MO);
    CU_ASSERT(fd_check(mm_loss, NULL, mm.x, dx, MN * MK) < 1e-6);
    CU_ASSERT(fd_check(mm_loss, NULL, mm.W, dW, MO * MK) < 1e-6);
    float *fx = tof(mm.x, MN * MK), *fW = tof(mm.W, MO * MK), *fR = tof(mm.R, MN * MO), fo[MN * MO];
    float fdx[MN * MK], fdW[MO * MK] = {0};
    kcpu_matmul_fwd(fo, MO, fx, fW, MN, MK, MO, 0.0f);
    mm_loss(NULL);
    CU_ASSERT(fdiff(fo, mm.out, MN * MO) < 2e-5);
    kcpu_matmul_bwd(fdx, 0.0f, fdW, fR, fx, fW, MN, MK, MO);
    CU_ASSERT(fdiff(fdx, dx, MN * MK) < 2e-5);
    CU_ASSERT(fdiff(fdW, dW, MO * MK) < 2e-5);
    free(fx), free(fW), free(fR);
}

/* ---- rope ---- */
static void test_rope(void)
{
    enum { B = 2, T = 9, NH = 3, HD = 8, N = B * T * NH * HD };
    double x[N], y[N], z[N];
    fill(x, N, 1);
    memcpy(y, x, sizeof x);
    kref_rope(y, B, T, NH, HD, 10000.0, 0);
    /* explicit complex rotation: (x0 + i x1) * e^{i t theta^(-2i/hd)} */
    double worst = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++)
                for (int i = 0; i < HD / 2; i++) {
                    int64_t o = (((int64_t)b * T + t) * NH + h) * HD + 2 * i;
                    double complex zc = (x[o] + I * x[o + 1]) * cexp(I * t / pow(10000.0, 2.0 * i / HD));
                    worst = fmax(worst, fmax(fabs(creal(zc) - y[o]), fabs(cimag(zc) - y[o + 1])));
                }
    CU_ASSERT(worst < 1e-12);
    /* inverse undoes it; being a rotation, its transpose is its inverse (the backward) */
    memcpy(z, y, sizeof y);
    kref_rope(z, B, T, NH, HD, 10000.0, 1);
    for (int i = 0; i < N; i++) CU_ASSERT_DOUBLE_EQUAL(z[i], x[i], 1e-12);
    double R[N], gR[N];
    fill(R, N, 1);
    memcpy(gR, R, sizeof R);
    kref_rope(gR, B, T, NH, HD, 10000.0, 1); /* gradient of sum(rope(x) * R) */
    double lin = dot(y, R, N), alt = dot(x, gR, N);
    CU_ASSERT_DOUBLE_EQUAL(lin, alt, 1e-10);
    /* fast, with a row stride wider than the heads */
    enum { LD = NH * HD + 5 };
    float fx[B * T * LD], cs[T * HD / 2], sn[T * HD / 2];
    for (int r = 0; r < B * T; r++)
        for (int j = 0; j < LD; j++) fx[r * LD + j] = j < NH * HD ? (float)x[r * NH * HD + j] : 7.0f;
    kcpu_rope_table(cs, sn, T, HD, 10000.0f);
    kcpu_rope(fx, LD, B, T, NH, HD, cs, sn, 0);
    double fw = 0;
    for (int r = 0; r < B * T; r++)
        for (int j = 0; j < LD; j++)
            fw = fmax(fw, j < NH * HD ? fabs(fx[r * LD + j] - y[r * NH * HD + j]) : fabs(fx[r * LD + j] - 7.0f));
    CU_ASSERT(fw < 1e-5);
}

/* ---- attention (GQA: 4 query heads on 2 kv heads) ---- */
enum { AB = 2, AT = 7, AH = 4, AKV = 2, AHD = 4 };
enum { AQ = AB * AT * AH * AHD, AK = AB * AT * AKV * AHD };
static struct {
    double q[AQ], k[AK], v[AK], R[AQ], out[AQ];
} at;
static double at_loss(void *c)
{
    (void)c;
    kref_attention_fwd(at.out, NULL, at.q, at.k, at.v, AB, AT, AH, AKV, AHD);
    return dot(at.out, at.R, AQ);
}
static void test_attention(void)
{
    fill(at.q, AQ, 1.5);
    fill(at.k, AK, 1.5);
    fill(at.v, AK, 1);
    fill(at.R, AQ, 1);
    double dq[AQ] = {0}, dk[AK] = {0}, dv[AK] = {0};
    kref_attention_bwd(dq, dk, dv, at.R, at.q, at.k, at.v, AB, AT, AH, AKV, AHD);
    CU_ASSERT(fd_check(at_loss, NULL, at.q, dq, AQ) < 1e-6);
    CU_ASSERT(fd_check(at_loss, NULL, at.k, dk, AK) < 1e-6);
    CU_ASSERT(fd_check(at_loss, NULL, at.v, dv, AK) < 1e-6);
    /* causality: output at t does not depend on v at s > t */
    at_loss(NULL);
    double before = at.out[0];
    at.v[(int64_t)(AT - 1) * AKV * AHD] += 5;
    at_loss(NULL);
    CU_ASSERT_DOUBLE_EQUAL(at.out[0], before, 0);
    at.v[(int64_t)(AT - 1) * AKV * AHD] -= 5;
    /* fast, q k v side by side in one fused buffer as the model stores them */
    enum { LD = (AH + 2 * AKV) * AHD };
    float qkv[AB * AT * LD], fo[AQ], P[AB * AH * AT * AT], dqkv[AB * AT * LD], scratch[256 * AT * AT] /* up to 256 threads */;
    for (int r = 0; r < AB * AT; r++) {
        for (int j = 0; j < AH * AHD; j++) qkv[r * LD + j] = (float)at.q[r * AH * AHD + j];
        for (int j = 0; j < AKV * AHD; j++) {
            qkv[r * LD + AH * AHD + j] = (float)at.k[r * AKV * AHD + j];
            qkv[r * LD + (AH + AKV) * AHD + j] = (float)at.v[r * AKV * AHD + j];
        }
    }
    at_loss(NULL);
    kcpu_attention_fwd(fo, AH * AHD, P, qkv, LD, qkv + AH * AHD, qkv + (AH + AKV) * AHD, LD, AB, AT, AH, AKV, AHD);
    CU_ASSERT(fdiff(fo, at.out, AQ) < 2e-5);
    float *fR = tof(at.R, AQ);
    kcpu_attention_bwd(dqkv, dqkv + AH * AHD, dqkv + (AH + AKV) * AHD, fR, AH * AHD, P, qkv, LD, qkv + AH * AHD,
                       qkv + (AH + AKV) * AHD, LD, AB, AT, AH, AKV, AHD, scratch);
    float fdq[AQ], fdk[AK], fdv[AK];
    for (int r = 0; r < AB * AT; r++) {
        for (int j = 0; j < AH * AHD; j++) fdq[r * AH * AHD + j] = dqkv[r * LD + j];
        for (int j = 0; j < AKV * AHD; j++) {
            fdk[r * AKV * AHD + j] = dqkv[r * LD + AH * AHD + j];
            fdv[r * AKV * AHD + j] = dqkv[r * LD + (AH + AKV) * AHD + j];
        }
    }
    CU_ASSERT(fdiff(fdq, dq, AQ) < 2e-5);
    CU_ASSERT(fdiff(fdk, dk, AK) < 2e-5);
    CU_ASSERT(fdiff(fdv, dv, AK) < 2e-5);
    free(fR);
}

/* The fast attention works on the causal lower triangle in 64-row blocks: a T spanning
 * three blocks (the last partial) against the reference, forward and backward. */
static void test_attention_blocks(void)
{
    enum { B = 1, T = 150, H = 4, KV = 2, HD = 4, NQ = B * T * H * HD, NK = B * T * KV * HD };
    double *q = malloc(NQ * 8), *k = malloc(NK * 8), *v = malloc(NK * 8), *R = malloc(NQ * 8), *o = malloc(NQ * 8);
    double *dq = calloc(NQ, 8), *dk = calloc(NK, 8), *dv = calloc(NK, 8);
    fill(q, NQ, 1.5), fill(k, NK, 1.5), fill(v, NK, 1), fill(R, NQ, 1);
    kref_attention_fwd(o, NULL, q, k, v, B, T, H, KV, HD);
    kref_attention_bwd(dq, dk, dv, R, q, k, v, B, T, H, KV, HD);
    float *fq = tof(q, NQ), *fk = tof(k, NK), *fv = tof(v, NK), *fR = tof(R, NQ), *fo = malloc(NQ * 4);
    float *P = malloc((size_t)B * H * T * T * 4), *sc = malloc((size_t)256 * T * T * 4);
    float *fdq = malloc(NQ * 4), *fdk = malloc(NK * 4), *fdv = malloc(NK * 4);
    kcpu_attention_fwd(fo, H * HD, P, fq, H * HD, fk, fv, KV * HD, B, T, H, KV, HD);
    CU_ASSERT(fdiff(fo, o, NQ) < 2e-5);
    CU_ASSERT_EQUAL(P[(int64_t)10 * T + 11], 0); /* above the diagonal */
    kcpu_attention_bwd(fdq, fdk, fdv, fR, H * HD, P, fq, H * HD, fk, fv, KV * HD, B, T, H, KV, HD, sc);
    CU_ASSERT(fdiff(fdq, dq, NQ) < 2e-5);
    CU_ASSERT(fdiff(fdk, dk, NK) < 2e-5);
    CU_ASSERT(fdiff(fdv, dv, NK) < 2e-5);
    free(q), free(k), free(v), free(R), free(o), free(dq), free(dk), free(dv);
    free(fq), free(fk), free(fv), free(fR), free(fo), free(P), free(sc), free(fdq), free(fdk), free(fdv);
}

/* ---- swiglu ---- */
enum { SN = 40 };
static struct {
    double a[SN], b[SN], R[SN], g[SN];
} sw;
static double sw_loss(void *c)
{
    (void)c;
    kref_swiglu_fwd(sw.g, sw.a, sw.b, SN);
    return dot(sw.g, sw.R, SN);
}
static void test_swiglu(void)
{
    fill(sw.a, SN, 4);
    fill(sw.b, SN, 2);
    fill(sw.R, SN, 1);
    double da[SN] = {0}, db[SN] = {0};
    kref_swiglu_bwd(da, db, sw.R, sw.a, sw.b, SN);
    CU_ASSERT(fd_check(sw_loss, NULL, sw.a, da, SN) < 1e-6);
    CU_ASSERT(fd_check(sw_loss, NULL, sw.b, db, SN) < 1e-6);
    float *fa = tof(sw.a, SN), *fb = tof(sw.b, SN), *fR = tof(sw.R, SN), fg[SN], fda[SN], fdb[SN];
    kcpu_swiglu_fwd(fg, fa, fb, SN);
    sw_loss(NULL);
    CU_ASSERT(fdiff(fg, sw.g, SN) < 2e-5);
    kcpu_swiglu_bwd(fda, fdb, fR, fa, fb, SN);
    CU_ASSERT(fdiff(fda, da, SN) < 2e-5);
    CU_ASSERT(fdiff(fdb, db, SN) < 2e-5);
    free(fa), free(fb), free(fR);
}

/* ---- cross-entropy and embedding ---- */
enum { XN = 5, XV = 11 };
static struct {
    double logits[XN * XV];
    int32_t tgt[XN];
} xe;
static double xe_loss(void *c)
{
    (void)c;
    return kref_xent_fwd(xe.logits, xe.tgt, XN, XV);
}
static void test_xent_embedding(void)
{
    fill(xe.logits, XN * XV, 3);
    for (int n = 0; n < XN; n++) xe.tgt[n] = (n * 7) % XV;
    double dl[XN * XV] = {0};
    kref_xent_bwd(dl, xe.logits, xe.tgt, XN, XV);
    CU_ASSERT(fd_check(xe_loss, NULL, xe.logits, dl, XN * XV) < 1e-6);
    float *fl = tof(xe.logits, XN * XV), loss[XN], lse[XN];
    double mean = kcpu_xent_fwd(loss, lse, fl, xe.tgt, XN, XV);
    CU_ASSERT(fabs(mean - xe_loss(NULL)) < 2e-5 * fmax(1, fabs(mean)));
    kcpu_xent_bwd(fl, lse, xe.tgt, XN, XV, 1.0f / XN);
    CU_ASSERT(fdiff(fl, dl, XN * XV) < 2e-5);
    free(fl);
    /* embedding: gradient of sum(E[tok] * R) is R scattered (and summed) into tok rows */
    enum { V = 5, D = 3, N = 6 };
    int32_t tok[N] = {1, 3, 1, 0, 4, 1};
    double E[V * D], R[N * D], out[N * D], dE[V * D] = {0};
    fill(E, V * D, 1);
    fill(R, N * D, 1);
    kref_embedding_fwd(out, tok, E, N, D);
    kref_embedding_bwd(dE, tok, R, N, D);
    CU_ASSERT_DOUBLE_EQUAL(dE[1 * D + 2], R[0 * D + 2] + R[2 * D + 2] + R[5 * D + 2], 1e-15);
    CU_ASSERT_DOUBLE_EQUAL(dE[2 * D], 0, 0);
    float *fE = tof(E, V * D), *fR = tof(R, N * D), fo[N * D], fdE[V * D] = {0};
    kcpu_embedding_fwd(fo, tok, fE, N, D);
    CU_ASSERT(fdiff(fo, out, N * D) < 1e-7);
    kcpu_embedding_bwd(fdE, tok, fR, N, D);
    CU_ASSERT(fdiff(fdE, dE, V * D) < 2e-6);
    free(fE), free(fR);
}

/* ---- adamw: the fast op against the reference and a hand-computed step ---- */
static void test_adamw_op(void)
{
    enum { N = 4 };
    double p[N] = {0.5, -1, 2, 0}, g[N] = {0.1, -0.2, 0.3, 0}, m[N] = {0}, v[N] = {0};
    float fp[N] = {0.5f, -1, 2, 0}, fg[N] = {0.1f, -0.2f, 0.3f, 0}, fm[N] = {0}, fv[N] = {0};
    kref_adamw(p, g, m, v, N, 0.01, 0.9, 0.95, 1e-8, 0.1, 1);
    /* step 1: m = 0.1 g, v = 0.05 g^2, m/bc1 = g, v/bc2 = g^2: update = sign(g) (almost) */
    double hand0 = 0.5 - 0.01 * (0.1 / (0.1 + 1e-8) + 0.1 * 0.5);
    CU_ASSERT_DOUBLE_EQUAL(p[0], hand0, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(p[3], 0, 0);
    kcpu_adamw(fp, NULL, fg, fm, fv, N, 0.01f, 0.9f, 0.95f, 1e-8f, 0.1f, 1 - 0.9, 1 - 0.95, 1.0f);
    for (int i = 0; i < N; i++) CU_ASSERT(fabs(fp[i] - p[i]) < 1e-6);
    double big[5000];
    float fbig[5000];
    for (int i = 0; i < 5000; i++) fbig[i] = (float)(big[i] = (i % 7) - 3.0);
    double s = 0;
    for (int i = 0; i < 5000; i++) s += big[i] * big[i];
    CU_ASSERT_DOUBLE_EQUAL(kcpu_sumsq(fbig, 5000), s, 1e-9);
}

/* Chunk sums side by side must round exactly as one chunk at a time in element order
 * (the gradient norm's bits, and so every clipped step's, depend on it): 9.5 chunks,
 * so one group of eight full chunks and a ragged one. */
static void test_sumsq_chunk_order(void)
{
    int64_t n = KERN_NORM_CHUNK * 19 / 2, chunks = kern_norm_chunks(n);
    float *x = malloc((size_t)n * sizeof *x);
    double *parts = malloc((size_t)chunks * sizeof *parts);
    CU_ASSERT_FATAL(x && parts && chunks == 10);
    uint64_t r = 12345;
    for (int64_t i = 0; i < n; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((int64_t)(r >> 33) - (1ll << 30)) * 0x1p-27f; /* wide range: rounding matters */
    }
    kcpu_sumsq_parts(x, n, parts);
    double total = 0;
    for (int64_t c = 0; c < chunks; c++) {
        double s = 0;
        for (int64_t i = c * KERN_NORM_CHUNK; i < n && i < (c + 1) * KERN_NORM_CHUNK; i++) s += (double)x[i] * x[i];
        CU_ASSERT(memcmp(&s, &parts[c], sizeof s) == 0);
        total += s;
    }
    double got = kcpu_sumsq(x, n);
    CU_ASSERT(memcmp(&got, &total, sizeof got) == 0);
    free(x), free(parts);
}

void suite_kern_ops(void)
{
    CU_pSuite s = CU_add_suite("kern_ops", NULL, NULL);
    CU_add_test(s, "rmsnorm: reference vs finite differences, fast vs reference", test_rmsnorm);
    CU_add_test(s, "matmul: reference vs finite differences, fast vs reference", test_matmul);
    CU_add_test(s, "rope: complex rotation, inverse = backward, fast with stride", test_rope);
    CU_add_test(s, "attention GQA: finite differences, causality, fast vs reference", test_attention);
    CU_add_test(s, "attention: causal 64-row blocks over T = 150 vs reference", test_attention_blocks);
    CU_add_test(s, "swiglu: finite differences, fast vs reference", test_swiglu);
    CU_add_test(s, "cross-entropy and embedding", test_xent_embedding);
    CU_add_test(s, "adamw element step and sumsq", test_adamw_op);
    CU_add_test(s, "sumsq: chunks side by side round as one at a time", test_sumsq_chunk_order);
}
