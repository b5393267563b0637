/* The fused attention kernels (kernels/cuda/attn_fused.h) against the reference path, the
 * three cuBLAS GEMMs of kcu_attention_fwd/bwd run in fp32 (pedantic, no TF32: within 1e-4
 * of the double reference, test_op_attention), forward and backward, on shapes with GQA,
 * MQA, T not a multiple of any tile and every head size the kernels are built for; and the
 * whole model with fused attention against the same model on the reference attention.
 *
 * Tolerance (max |fused - ref| / max |ref| per output): 2e-2. The fused kernels feed bf16
 * tensor cores (q, k, v, dout, P and dS rounded to 8 mantissa bits, 3.9e-3 relative each)
 * and sum in fp32; the CPU model of exactly these rounding points (kernels/cpu/flash.c,
 * tests/unit/test_flash.c) stays within 5.8e-3 of the double reference. lse is checked
 * against that model run in fp32 (bf16 = 0), and the device results against the model run
 * with bf16 = 1 at 1e-2 on the small shapes: the kernels mirror its loops. */
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/flash.h"
#include "kernels/cuda/attn_fused.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/model.h"
#include "kernels/cuda/ops.h"
#include "tests/gpu/gpu_test.h"

#define TOL_FUSED 2e-2
#define TOL_MIRROR 1e-2

typedef struct {
    void *p[40];
    int n;
} fpool;

static void *fal(fpool *pl, size_t bytes)
{
    void *p = NULL;
    if (pl->n >= 40 || cudaMalloc(&p, bytes ? bytes : 4) != cudaSuccess) return NULL;
    cudaMemset(p, 0, bytes ? bytes : 4);
    return pl->p[pl->n++] = p;
}

static void fpool_free(fpool *pl)
{
    for (int i = 0; i < pl->n; i++) cudaFree(pl->p[i]);
    pl->n = 0;
}

static float *fup(fpool *pl, const float *h, int64_t n)
{
    float *d = fal(pl, (size_t)n * 4);
    if (d) cudaMemcpy(d, h, (size_t)n * 4, cudaMemcpyHostToDevice);
    return d;
}

static float *fdown(const float *d, int64_t n)
{
    float *h = calloc((size_t)n, 4);
    cudaDeviceSynchronize();
    if (h && d) cudaMemcpy(h, d, (size_t)n * 4, cudaMemcpyDeviceToHost);
    return h;
}

typedef struct {
    int B, T, H, KV, hd;
} fshape;

static const fshape SHAPES[] = {
    {2, 64, 4, 4, 16},    /* one tile, no GQA */
    {1, 100, 8, 2, 48},   /* GQA 4:1, T % 64 = 36 (small's head size) */
    {2, 130, 4, 1, 64},   /* MQA, a last forward tile of 2 rows */
    {1, 33, 2, 2, 128},   /* 7b's head size, T under one tile */
    {1, 1, 2, 1, 32},     /* one token */
    {2, 1000, 8, 2, 64},  /* GQA, T % 64 = 40 */
    {1, 2048, 32, 4, 64}, /* 1b's heads at its full context */
    {1, 777, 4, 4, 128},  /* T % 64 = 9 at head size 128 */
};

static void flash_case(fshape sh, uint64_t seed)
{
    const int B = sh.B, T = sh.T, H = sh.H, KV = sh.KV, hd = sh.hd;
    const int64_t NQ = (int64_t)B * T * H * hd, NK = (int64_t)B * T * KV * hd, NP = (int64_t)B * H * T * T,
                  NL = (int64_t)B * H * T;
    char name[96];
    snprintf(name, sizeof name, "B%d T%d H%d KV%d hd%d", B, T, H, KV, hd);
    fpool pl = {0};
    cublasHandle_t h = NULL;
    GT_CHECK(cublasCreate(&h) == CUBLAS_STATUS_SUCCESS, "cublasCreate");
    if (!h) return;
    cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH);
    kcu_gemm g = {h, NULL, KCU_FP32, NULL, NULL, 0};
    float *q = malloc(4 * NQ), *k = malloc(4 * NK), *v = malloc(4 * NK), *dout = malloc(4 * NQ);
    gt_fill(q, NQ, seed, -1.5f, 1.5f);
    gt_fill(k, NK, seed + 1, -1.5f, 1.5f);
    gt_fill(v, NK, seed + 2, -1, 1);
    gt_fill(dout, NQ, seed + 3, -1, 1);
    float *dq_ = fup(&pl, q, NQ), *dk_ = fup(&pl, k, NK), *dv_ = fup(&pl, v, NK), *ddo = fup(&pl, dout, NQ);
    /* reference: the three GEMMs in fp32 */
    float *ro = fal(&pl, NQ * 4), *qh = fal(&pl, NQ * 4), *kh = fal(&pl, NQ * 4), *vh = fal(&pl, NQ * 4),
          *P = fal(&pl, NP * 4), *dP = fal(&pl, NP * 4), *s1 = fal(&pl, NQ * 4), *s2 = fal(&pl, NQ * 4),
          *s3 = fal(&pl, NQ * 4), *rdq = fal(&pl, NQ * 4), *rdk = fal(&pl, NK * 4), *rdv = fal(&pl, NK * 4);
    /* fused */
    uint16_t *q16 = fal(&pl, NQ * 2), *k16 = fal(&pl, NK * 2), *v16 = fal(&pl, NK * 2), *do16 = fal(&pl, NQ * 2);
    float *fo = fal(&pl, NQ * 4), *flse = fal(&pl, NL * 4), *Dr = fal(&pl, NL * 4), *fdq = fal(&pl, NQ * 4),
          *fdk = fal(&pl, NK * 4), *fdv = fal(&pl, NK * 4), *fdq2 = fal(&pl, NQ * 4), *fdk2 = fal(&pl, NK * 4),
          *fdv2 = fal(&pl, NK * 4);
    if (!fdv2) {
        gt_skip("%s: device memory", name);
        goto out;
    }
    xffl_status s = kcu_attention_fwd(&g, ro, qh, kh, vh, P, s1, dq_, dk_, dv_, B, T, H, KV, hd);
    if (s == XFFL_OK) s = kcu_attention_bwd(&g, rdq, rdk, rdv, ddo, qh, kh, vh, P, dP, s1, s2, s3, B, T, H, KV, hd);
    GT_CHECK(s == XFFL_OK, "%s: reference attention: %s", name, xffl_errmsg());
    GT_CHECK(kcu_to_bf16(q16, dq_, NQ, NULL) == 0 && kcu_to_bf16(k16, dk_, NK, NULL) == 0 &&
                 kcu_to_bf16(v16, dv_, NK, NULL) == 0,
             "%s: to_bf16", name);
    GT_CHECK(kcu_flash_fwd(fo, flse, q16, k16, v16, B, T, H, KV, hd, NULL) == 0, "%s: flash forward launch", name);
    GT_CHECK(kcu_flash_bwd(fdq, fdk, fdv, ddo, fo, flse, q16, k16, v16, do16, Dr, B, T, H, KV, hd, NULL) == 0,
             "%s: flash backward launch", name);
    GT_CHECK(kcu_flash_bwd(fdq2, fdk2, fdv2, ddo, fo, flse, q16, k16, v16, do16, Dr, B, T, H, KV, hd, NULL) == 0,
             "%s: flash backward launch (again)", name);
    cudaError_t e = cudaDeviceSynchronize();
    GT_CHECK(e == cudaSuccess, "%s: %s", name, cudaGetErrorString(e));
    if (e != cudaSuccess) goto out;
    {
        float *hro = fdown(ro, NQ), *hrdq = fdown(rdq, NQ), *hrdk = fdown(rdk, NK), *hrdv = fdown(rdv, NK);
        float *hfo = fdown(fo, NQ), *hfl = fdown(flse, NL), *hfdq = fdown(fdq, NQ), *hfdk = fdown(fdk, NK),
              *hfdv = fdown(fdv, NK), *h2q = fdown(fdq2, NQ), *h2k = fdown(fdk2, NK), *h2v = fdown(fdv2, NK);
        double eo = gt_rel_err(hfo, hro, NQ), eq = gt_rel_err(hfdq, hrdq, NQ), ek = gt_rel_err(hfdk, hrdk, NK),
               ev = gt_rel_err(hfdv, hrdv, NK);
        printf("\n    %-26s fused vs fp32 GEMMs: out %.2e dq %.2e dk %.2e dv %.2e", name, eo, eq, ek, ev);
        GT_CHECK(eo < TOL_FUSED, "%s: fused out rel err %.3g (limit %.0e)", name, eo, TOL_FUSED);
        GT_CHECK(eq < TOL_FUSED, "%s: fused dq rel err %.3g (limit %.0e)", name, eq, TOL_FUSED);
        GT_CHECK(ek < TOL_FUSED, "%s: fused dk (GQA group sum) rel err %.3g (limit %.0e)", name, ek, TOL_FUSED);
        GT_CHECK(ev < TOL_FUSED, "%s: fused dv (GQA group sum) rel err %.3g (limit %.0e)", name, ev, TOL_FUSED);
        GT_CHECK(!memcmp(hfdq, h2q, 4 * NQ) && !memcmp(hfdk, h2k, 4 * NK) && !memcmp(hfdv, h2v, 4 * NK),
                 "%s: two fused backwards differ (the passes have no atomics: must be bit-identical)", name);
        if (T <= 256) { /* the CPU model of the kernels: lse in fp32, everything at the bf16 rounding points */
            float *co = malloc(4 * NQ), *cl = malloc(4 * NL), *cq = malloc(4 * NQ), *ck = malloc(4 * NK),
                  *cv = malloc(4 * NK);
            kflash_fwd(co, cl, q, k, v, B, T, H, KV, hd, 0);
            double el = gt_rel_err(hfl, cl, NL);
            GT_CHECK(el < TOL_FUSED, "%s: lse rel err %.3g against the fp32 model (limit %.0e)", name, el, TOL_FUSED);
            kflash_fwd(co, cl, q, k, v, B, T, H, KV, hd, 1);
            kflash_bwd(cq, ck, cv, dout, co, cl, q, k, v, B, T, H, KV, hd, 1);
            double mo = gt_rel_err(hfo, co, NQ), mq = gt_rel_err(hfdq, cq, NQ), mk = gt_rel_err(hfdk, ck, NK),
                   mv = gt_rel_err(hfdv, cv, NK);
            printf("; vs CPU bf16 model: lse(fp32) %.2e out %.2e dq %.2e dk %.2e dv %.2e", el, mo, mq, mk, mv);
            GT_CHECK(mo < TOL_MIRROR && mq < TOL_MIRROR && mk < TOL_MIRROR && mv < TOL_MIRROR,
                     "%s: device vs CPU model of the kernels: out %.3g dq %.3g dk %.3g dv %.3g (limit %.0e)", name, mo,
                     mq, mk, mv, TOL_MIRROR);
            free(co), free(cl), free(cq), free(ck), free(cv);
        }
        free(hro), free(hrdq), free(hrdk), free(hrdv), free(hfo), free(hfl), free(hfdq), free(hfdk), free(hfdv);
        free(h2q), free(h2k), free(h2v);
    }
out:
    free(q), free(k), free(v), free(dout);
    cublasDestroy(h);
    fpool_free(&pl);
}

void test_flash_attention_vs_reference(void)
{
    for (size_t i = 0; i < sizeof SHAPES / sizeof SHAPES[0]; i++) flash_case(SHAPES[i], 100 + 10 * i);
    printf("\n    ");
}

/* The model (bf16 mode) with fused attention against the same model on the reference
 * attention: loss, every logit and every gradient; T = 100 is not a multiple of a tile and
 * `tiny` has GQA (4 heads over 2). Tolerances as test_model's bf16 ones against double. */
static void model_pair(const char *preset, int n_layers, int B, int T)
{
    ckpt_model_config cfg;
    GT_OK(ckpt_model_preset(preset, 0, &cfg));
    if (n_layers > 0) cfg.n_layers = n_layers;
    kcu_model *mf = NULL, *mr = NULL;
    const char *was = getenv("XFFL_CUDA_ATTENTION");
    char keep[32] = "";
    if (was) snprintf(keep, sizeof keep, "%s", was);
    unsetenv("XFFL_CUDA_ATTENTION");
    xffl_status s = kcu_model_create(&cfg, B, T, 0, KCU_BF16, &mf);
    setenv("XFFL_CUDA_ATTENTION", "reference", 1);
    if (s == XFFL_OK) s = kcu_model_create(&cfg, B, T, 0, KCU_BF16, &mr);
    if (was) setenv("XFFL_CUDA_ATTENTION", keep, 1);
    else unsetenv("XFFL_CUDA_ATTENTION");
    if (s != XFFL_OK) {
        kcu_model_free(mf);
        GT_OK(s);
    }
    GT_CHECK(kcu_model_fused(mf) && !kcu_model_fused(mr), "%s: fused %d / %d", preset, kcu_model_fused(mf),
             kcu_model_fused(mr));
    GT_CHECK(kcu_model_bytes(mf) < kcu_model_bytes(mr), "%s: fused slab %llu not below the reference's %llu", preset,
             (unsigned long long)kcu_model_bytes(mf), (unsigned long long)kcu_model_bytes(mr));
    const ckpt_param_table *t = kcu_model_table(mf);
    int N = B * T, V = cfg.vocab_size;
    float *p = gt_init_params(t, 12), *gf = malloc((size_t)t->total * 4), *gr = malloc((size_t)t->total * 4);
    float *lf = malloc((size_t)N * V * 4), *lr = malloc((size_t)N * V * 4);
    int32_t *in = malloc((size_t)N * 4), *tg = malloc((size_t)N * 4);
    gt_text_batch(2, B, T, in, tg);
    float lossf = 0, lossr = 0;
    kcu_model *ms[2] = {mf, mr};
    float *gs[2] = {gf, gr}, *ls[2] = {lf, lr}, *loss[2] = {&lossf, &lossr};
    for (int j = 0; j < 2 && s == XFFL_OK; j++) {
        s = kcu_set_params(ms[j], p);
        if (s == XFFL_OK) s = kcu_zero_grad(ms[j]);
        if (s == XFFL_OK) s = kcu_forward(ms[j], in, tg, B, T, loss[j]);
        for (int i = 0; s == XFFL_OK && i < N; i++) s = kcu_logits(ms[j], i / T, i % T, ls[j] + (int64_t)i * V);
        if (s == XFFL_OK) s = kcu_backward(ms[j]);
        if (s == XFFL_OK) s = kcu_get_grads(ms[j], gs[j]);
    }
    GT_CHECK(s == XFFL_OK, "%s: %s", preset, xffl_errmsg());
    if (s == XFFL_OK) {
        double el = fabs(lossf - lossr) / fabs(lossr), eg = 0, elg = gt_rel_err(lf, lr, (int64_t)N * V);
        GT_CHECK(el < 1e-2, "%s: loss fused %.6g vs reference %.6g", preset, lossf, lossr);
        GT_CHECK(elg < 3e-2, "%s: logits rel err %.3g", preset, elg);
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *pp = &t->params[i];
            double e = gt_rel_err(gf + pp->offset, gr + pp->offset, pp->numel);
            eg = e > eg ? e : eg;
            GT_CHECK(e < 5e-2, "%s: gradient of %s fused vs reference rel err %.3g (limit 5e-2)", preset, pp->name, e);
        }
        printf("\n    %s %d x %d: loss %.5f vs %.5f, logits %.2e, worst gradient %.2e; slab %.1f vs %.1f MiB", preset, B,
               T, lossf, lossr, elg, eg, kcu_model_bytes(mf) / 1048576.0, kcu_model_bytes(mr) / 1048576.0);
    }
    free(p), free(gf), free(gr), free(lf), free(lr), free(in), free(tg);
    kcu_model_free(mf);
    kcu_model_free(mr);
}

void test_model_fused_vs_reference_attention(void)
{
    model_pair("tiny", 0, 2, 100);
    model_pair("small", 2, 2, 100);
    printf("\n    ");
}
