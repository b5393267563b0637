/* The fused-attention algorithm (kernels/cpu/flash.h: tiled online softmax, only the
 * log-sum-exp kept, the two-pass backward) against the double-precision reference attention
 * (kernels/cpu/ref.h), on shapes with GQA, MQA and T not a multiple of any tile.
 * Error: max |got - ref| / max(max |ref|, 1e-30) per output.
 * Limits: fp32 (bf16 = 0) 2e-5, the algorithm exact up to fp32 sums (measured: <= 9e-7);
 * bf16 emulation (the device kernels' rounding points) 1.5e-2: bf16 keeps 8 bits (3.9e-3
 * relative per operand; measured: <= 5.8e-3 on every output). */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "kernels/cpu/flash.h"
#include "kernels/cpu/ref.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static double urand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double relerr(const float *got, const double *ref, int64_t n)
{
    double m = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(got[i] - ref[i]);
        m = e > m ? e : m;
        s = fabs(ref[i]) > s ? fabs(ref[i]) : s;
    }
    return m / (s > 1e-30 ? s : 1e-30);
}

typedef struct {
    int B, T, H, KV, hd;
} shape;

/* Largest errors over the case: out, lse, dq, dk, dv. */
static void run_case(shape sh, int bf16, double err[5])
{
    int B = sh.B, T = sh.T, H = sh.H, KV = sh.KV, hd = sh.hd;
    int64_t nq = (int64_t)B * T * H * hd, nk = (int64_t)B * T * KV * hd, nl = (int64_t)B * H * T;
    double *q = malloc(8 * nq), *k = malloc(8 * nk), *v = malloc(8 * nk), *dout = malloc(8 * nq);
    double *out = calloc(nq, 8), *P = calloc((size_t)(B * H) * T * T, 8), *lse = malloc(8 * nl);
    double *dq = calloc(nq, 8), *dk = calloc(nk, 8), *dv = calloc(nk, 8);
    float *fq = malloc(4 * nq), *fk = malloc(4 * nk), *fv = malloc(4 * nk), *fdo = malloc(4 * nq);
    float *fout = malloc(4 * nq), *flse = malloc(4 * nl), *fdq = malloc(4 * nq), *fdk = malloc(4 * nk),
          *fdv = malloc(4 * nk);
    /* q scaled so the scores spread over several units: peaked and flat rows both occur */
    for (int64_t i = 0; i < nq; i++) fq[i] = (float)(q[i] = (2 * urand() - 1) * 2.0);
    for (int64_t i = 0; i < nk; i++) fk[i] = (float)(k[i] = (2 * urand() - 1) * 2.0);
    for (int64_t i = 0; i < nk; i++) fv[i] = (float)(v[i] = 2 * urand() - 1);
    for (int64_t i = 0; i < nq; i++) fdo[i] = (float)(dout[i] = 2 * urand() - 1);
    /* the reference takes the same (float) inputs, so only the algorithm's error is measured */
    for (int64_t i = 0; i < nq; i++) q[i] = fq[i], dout[i] = fdo[i];
    kref_attention_fwd(out, P, q, k, v, B, T, H, KV, hd);
    kref_attention_bwd(dq, dk, dv, dout, q, k, v, B, T, H, KV, hd);
    /* lse from the reference's scores: log sum_s exp(c q.k) over the causal prefix */
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                int kvh = h / (H / KV);
                double mx = -INFINITY, *sc = malloc(8 * (size_t)(t + 1)), sum = 0;
                for (int s = 0; s <= t; s++) {
                    double d = 0;
                    for (int i = 0; i < hd; i++)
                        d += q[(((int64_t)b * T + t) * H + h) * hd + i] * k[(((int64_t)b * T + s) * KV + kvh) * hd + i];
                    sc[s] = d / sqrt((double)hd);
                    mx = sc[s] > mx ? sc[s] : mx;
                }
                for (int s = 0; s <= t; s++) sum += exp(sc[s] - mx);
                lse[((int64_t)b * H + h) * T + t] = mx + log(sum);
                free(sc);
            }
    kflash_fwd(fout, flse, fq, fk, fv, B, T, H, KV, hd, bf16);
    kflash_bwd(fdq, fdk, fdv, fdo, fout, flse, fq, fk, fv, B, T, H, KV, hd, bf16);
    err[0] = relerr(fout, out, nq);
    err[1] = relerr(flse, lse, nl);
    err[2] = relerr(fdq, dq, nq);
    err[3] = relerr(fdk, dk, nk);
    err[4] = relerr(fdv, dv, nk);
    free(q), free(k), free(v), free(dout), free(out), free(P), free(lse), free(dq), free(dk), free(dv);
    free(fq), free(fk), free(fv), free(fdo), free(fout), free(flse), free(fdq), free(fdk), free(fdv);
}

static const shape shapes[] = {
    {2, 64, 4, 4, 16},   /* one tile exactly, no GQA */
    {1, 100, 8, 2, 48},  /* GQA 4:1, T % 64 = 36, T % 32 = 4 */
    {2, 130, 4, 1, 64},  /* MQA, three forward tiles, the last of 2 rows */
    {1, 33, 2, 2, 128},  /* 7b's head size, T under one tile */
    {1, 1, 2, 1, 32},    /* one token: softmax of one score */
    {1, 200, 4, 2, 32},  /* four tiles, the causal diagonal crossing tiles of both sizes */
};

static void check(int bf16, double lim_fwd, double lim_bwd)
{
    static const char *what[5] = {"out", "lse", "dq", "dk", "dv"};
    double worst[5] = {0};
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        double e[5];
        run_case(shapes[i], bf16, e);
        for (int j = 0; j < 5; j++) {
            double lim = j < 2 ? lim_fwd : lim_bwd;
            if (!(e[j] <= lim))
                fprintf(stderr, "\n  flash %s B%d T%d H%d KV%d hd%d: %s rel err %.3g > %.0e\n", bf16 ? "bf16" : "fp32",
                        shapes[i].B, shapes[i].T, shapes[i].H, shapes[i].KV, shapes[i].hd, what[j], e[j], lim);
            CU_ASSERT(e[j] <= lim);
            worst[j] = e[j] > worst[j] ? e[j] : worst[j];
        }
    }
    printf("\n  flash %s max rel err: out %.2e lse %.2e dq %.2e dk %.2e dv %.2e ", bf16 ? "bf16" : "fp32", worst[0],
           worst[1], worst[2], worst[3], worst[4]);
}

static void test_flash_fp32(void) { check(0, 2e-5, 2e-5); }
static void test_flash_bf16(void) { check(1, 1.5e-2, 1.5e-2); }

/* The forward's causality: changing k, v at positions > t leaves out[t] and lse[t] alone. */
static void test_flash_causal(void)
{
    enum { B = 1, T = 77, H = 2, KV = 1, hd = 16 };
    static float q[B * T * H * hd], k[B * T * KV * hd], v[B * T * KV * hd], o1[B * T * H * hd], o2[B * T * H * hd],
        l1[B * H * T], l2[B * H * T];
    for (int i = 0; i < B * T * H * hd; i++) q[i] = (float)(2 * urand() - 1);
    for (int i = 0; i < B * T * KV * hd; i++) k[i] = (float)(2 * urand() - 1), v[i] = (float)(2 * urand() - 1);
    kflash_fwd(o1, l1, q, k, v, B, T, H, KV, hd, 1);
    const int t = 40;
    for (int i = (t + 1) * KV * hd; i < B * T * KV * hd; i++) k[i] += 5, v[i] -= 3;
    kflash_fwd(o2, l2, q, k, v, B, T, H, KV, hd, 1);
    for (int i = 0; i < (t + 1) * H * hd; i++) CU_ASSERT_EQUAL(o1[i], o2[i]);
    for (int h = 0; h < H; h++)
        for (int s = 0; s <= t; s++) CU_ASSERT_EQUAL(l1[h * T + s], l2[h * T + s]);
    int changed = 0;
    for (int i = (t + 1) * H * hd; i < T * H * hd; i++) changed += o1[i] != o2[i];
    CU_ASSERT(changed > 0);
}

void suite_flash(void)
{
    CU_pSuite s = CU_add_suite("flash", NULL, NULL);
    CU_add_test(s, "tiled online softmax fp32 vs double reference: fwd, lse, bwd", test_flash_fp32);
    CU_add_test(s, "tiled online softmax, bf16 rounding as on the GPU, vs reference", test_flash_bf16);
    CU_add_test(s, "causality: later k, v leave earlier rows bit-identical", test_flash_causal);
}
