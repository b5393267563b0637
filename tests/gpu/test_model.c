/* The whole CUDA model against the double-precision CPU reference model (kref_model_loss):
 * one forward/backward (loss, logits, every gradient) in fp32 and bf16, and 50 AdamW steps
 * of `small` from the same initial version and data, whose held-out loss must be within 1 %
 * of the CPU run's in fp32 mode and within 3 % in bf16 mode (bf16 GEMM operands make the
 * trajectory drift: 1.43 % in a CPU emulation of this exact run, 4e-5 for fp32). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/ref.h"
#include "kernels/cuda/model.h"
#include "tests/gpu/gpu_test.h"

/* Tolerances, max |gpu - ref| / max |ref| (loss: plain relative error). */
typedef struct {
    double loss, logits, grads;
} tols;
static const tols FP32_TOL = {1e-4, 1e-4, 1e-4};
static const tols BF16_TOL = {1e-2, 3e-2, 5e-2};

static void fwd_bwd_case(const char *preset, int n_layers, int B, int T, kcu_precision prec, const tols *tol)
{
    ckpt_model_config cfg;
    GT_OK(ckpt_model_preset(preset, 0, &cfg));
    if (n_layers > 0) cfg.n_layers = n_layers;
    kcu_model *m = NULL;
    GT_OK(kcu_model_create(&cfg, B, T, 0, prec, &m));
    const ckpt_param_table *t = kcu_model_table(m);
    int N = B * T, V = cfg.vocab_size;
    float *p = gt_init_params(t, 11), *g = malloc((size_t)t->total * 4), *lg = malloc((size_t)N * V * 4);
    double *rp = malloc((size_t)t->total * 8), *rg = calloc((size_t)t->total, 8), *rl = malloc((size_t)N * V * 8);
    int32_t *in = malloc((size_t)N * 4), *tg = malloc((size_t)N * 4);
    gt_text_batch(1, B, T, in, tg);
    for (int64_t i = 0; i < t->total; i++) rp[i] = p[i];
    float loss = 0;
    xffl_status s = kcu_set_params(m, p);
    if (s == XFFL_OK) s = kcu_zero_grad(m);
    if (s == XFFL_OK) s = kcu_forward(m, in, tg, B, T, &loss);
    for (int i = 0; s == XFFL_OK && i < N; i++) s = kcu_logits(m, i / T, i % T, lg + (int64_t)i * V);
    if (s == XFFL_OK) s = kcu_backward(m);
    if (s == XFFL_OK) s = kcu_get_grads(m, g);
    GT_CHECK(s == XFFL_OK, "%s: %s", preset, xffl_errmsg());
    double rloss = kref_model_loss(t, rp, in, tg, B, T, rg, rl);
    const char *pn = prec == KCU_FP32 ? "fp32" : "bf16";
    double el = fabs(loss - rloss) / rloss;
    GT_CHECK(el < tol->loss, "%s %s: loss %.7g vs reference %.7g (rel %.3g, limit %.0e)", preset, pn, loss, rloss, el,
             tol->loss);
    double e = gt_rel_err_d(lg, rl, (int64_t)N * V);
    GT_CHECK(e < tol->logits, "%s %s: logits rel err %.3g (limit %.0e)", preset, pn, e, tol->logits);
    for (int i = 0; i < t->count; i++) { /* per tensor, so a failure names it */
        const ckpt_param *pp = &t->params[i];
        e = gt_rel_err_d(g + pp->offset, rg + pp->offset, pp->numel);
        GT_CHECK(e < tol->grads, "%s %s: gradient of %s rel err %.3g (limit %.0e)", preset, pn, pp->name, e, tol->grads);
    }
    free(p), free(g), free(lg), free(rp), free(rg), free(rl), free(in), free(tg);
    kcu_model_free(m);
}

void test_model_forward_backward_fp32(void)
{
    fwd_bwd_case("tiny", 0, 2, 24, KCU_FP32, &FP32_TOL); /* GQA: 4 heads over 2 kv heads */
    fwd_bwd_case("small", 2, 2, 64, KCU_FP32, &FP32_TOL);
}

void test_model_forward_backward_bf16(void)
{
    fwd_bwd_case("tiny", 0, 2, 24, KCU_BF16, &BF16_TOL);
    fwd_bwd_case("small", 2, 2, 64, KCU_BF16, &BF16_TOL);
}

/* ---- 50 steps of small: GPU (fp32 and bf16) vs the CPU reference run ------------------- */

enum { TR_STEPS = 50, TR_B = 2, TR_T = 32 };
static const float TR_LR = 2e-3f, TR_B1 = 0.9f, TR_B2 = 0.95f, TR_EPS = 1e-8f, TR_WD = 0.1f, TR_CLIP = 1.0f;

/* The CPU run: reference model gradients, global-norm clip, reference AdamW per tensor
 * (no decay on norm gains) — the update rule of kernels/backend.h. losses[i]: step i's loss;
 * losses[TR_STEPS]: loss of the trained model on a batch it never trained on. */
static void cpu_run(const ckpt_param_table *t, const float *p0, double *losses)
{
    int64_t P = t->total;
    double *p = malloc((size_t)P * 8), *g = malloc((size_t)P * 8), *m = calloc((size_t)P, 8), *v = calloc((size_t)P, 8);
    int32_t in[TR_B * TR_T], tg[TR_B * TR_T];
    for (int64_t i = 0; i < P; i++) p[i] = p0[i];
    for (int step = 0; step < TR_STEPS; step++) {
        gt_text_batch(100 + step, TR_B, TR_T, in, tg);
        memset(g, 0, (size_t)P * 8);
        losses[step] = kref_model_loss(t, p, in, tg, TR_B, TR_T, g, NULL);
        double n2 = 0;
        for (int64_t i = 0; i < P; i++) n2 += g[i] * g[i];
        double norm = sqrt(n2), sc = norm > TR_CLIP ? TR_CLIP / norm : 1.0;
        for (int64_t i = 0; i < P; i++) g[i] *= sc;
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *pp = &t->params[i];
            kref_adamw(p + pp->offset, g + pp->offset, m + pp->offset, v + pp->offset, pp->numel, TR_LR, TR_B1, TR_B2,
                       TR_EPS, pp->kind == CKPT_KIND_NORM ? 0.0 : TR_WD, step + 1);
        }
    }
    gt_text_batch(999, TR_B, TR_T, in, tg);
    losses[TR_STEPS] = kref_model_loss(t, p, in, tg, TR_B, TR_T, NULL, NULL);
    free(p), free(g), free(m), free(v);
}

static XFFL_MUST_USE xffl_status gpu_run(const ckpt_model_config *cfg, const float *p0, kcu_precision prec, double *losses)
{
    kcu_model *m = NULL;
    XFFL_FORWARD(kcu_model_create(cfg, TR_B, TR_T, 0, prec, &m));
    kcu_adamw_args a = {TR_LR, TR_B1, TR_B2, TR_EPS, TR_WD, TR_CLIP};
    int32_t in[TR_B * TR_T], tg[TR_B * TR_T];
    xffl_status s = kcu_set_params(m, p0);
    for (int step = 0; s == XFFL_OK && step < TR_STEPS; step++) {
        float loss = 0, gn = 0;
        gt_text_batch(100 + step, TR_B, TR_T, in, tg);
        s = kcu_zero_grad(m);
        if (s == XFFL_OK) s = kcu_forward(m, in, tg, TR_B, TR_T, &loss);
        if (s == XFFL_OK) s = kcu_backward(m);
        if (s == XFFL_OK) s = kcu_adamw_step(m, &a, &gn);
        losses[step] = loss;
    }
    float eval = 0;
    gt_text_batch(999, TR_B, TR_T, in, tg);
    if (s == XFFL_OK) s = kcu_forward(m, in, tg, TR_B, TR_T, &eval);
    losses[TR_STEPS] = eval;
    kcu_model_free(m);
    return s;
}

void test_train_small_50_steps_vs_cpu(void)
{
    ckpt_model_config cfg;
    GT_OK(ckpt_model_preset("small", 0, &cfg));
    ckpt_param_table *t = NULL;
    GT_OK(ckpt_param_table_create(&cfg, &t));
    float *p0 = gt_init_params(t, 2024); /* the version every run starts from */
    double cpu[TR_STEPS + 1], g32[TR_STEPS + 1], g16[TR_STEPS + 1];
    cpu_run(t, p0, cpu);
    xffl_status s = gpu_run(&cfg, p0, KCU_FP32, g32);
    GT_CHECK(s == XFFL_OK, "fp32 run: %s", xffl_errmsg());
    if (s == XFFL_OK) s = gpu_run(&cfg, p0, KCU_BF16, g16);
    GT_CHECK(s == XFFL_OK, "bf16 run: %s", xffl_errmsg());
    if (s == XFFL_OK) {
        int last = TR_STEPS; /* the held-out loss after the 50th update */
        double e32 = fabs(g32[last] - cpu[last]) / cpu[last], e16 = fabs(g16[last] - cpu[last]) / cpu[last];
        printf("\n    small, %d steps of %dx%d: loss %.4f -> held-out cpu %.5f, gpu fp32 %.5f (%.2e), gpu bf16 %.5f (%.2e)\n    ",
               TR_STEPS, TR_B, TR_T, cpu[0], cpu[last], g32[last], e32, g16[last], e16);
        GT_CHECK(cpu[last] < 0.8 * cpu[0], "the CPU run did not learn (%.4f -> %.4f): the comparison would be vacuous",
                 cpu[0], cpu[last]);
        GT_CHECK(e32 < 0.01, "fp32: loss after %d steps %.5f vs CPU %.5f (%.2f %%, limit 1 %%)", TR_STEPS, g32[last],
                 cpu[last], 100 * e32);
        GT_CHECK(e16 < 0.03, "bf16: loss after %d steps %.5f vs CPU %.5f (%.2f %%, limit 3 %%)", TR_STEPS, g16[last],
                 cpu[last], 100 * e16);
    }
    free(p0);
    ckpt_param_table_free(t);
}

/* Activation recomputation (kcu_model_create_ex, recompute = 1) against keeping every layer:
 * the same kernels on the same inputs, so the loss and every logit are bit-identical and the
 * gradients too, but for the token embedding's, which kcu_embedding_bwd sums with atomics in
 * any order (rel 1e-6 there). Both attention paths: bf16 (fused) and fp32 (three GEMMs). */
static void recompute_case(kcu_precision prec)
{
    ckpt_model_config cfg;
    GT_OK(ckpt_model_preset("small", 0, &cfg));
    cfg.n_layers = 3;
    const int B = 2, T = 100, N = B * T;
    kcu_model *m[2] = {NULL, NULL};
    GT_OK(kcu_model_create_ex(&cfg, B, T, 0, prec, 0, &m[0]));
    xffl_status s = kcu_model_create_ex(&cfg, B, T, 0, prec, 1, &m[1]);
    if (s != XFFL_OK) kcu_model_free(m[0]);
    GT_OK(s);
    GT_CHECK(kcu_model_bytes(m[1]) < kcu_model_bytes(m[0]), "recompute slab %llu not below %llu",
             (unsigned long long)kcu_model_bytes(m[1]), (unsigned long long)kcu_model_bytes(m[0]));
    const ckpt_param_table *t = kcu_model_table(m[0]);
    float *p = gt_init_params(t, 13), *g[2] = {malloc((size_t)t->total * 4), malloc((size_t)t->total * 4)};
    float *lg[2] = {malloc((size_t)cfg.vocab_size * 4), malloc((size_t)cfg.vocab_size * 4)}, loss[2] = {0, 0};
    int32_t *in = malloc((size_t)N * 4), *tg = malloc((size_t)N * 4);
    gt_text_batch(3, B, T, in, tg);
    for (int j = 0; j < 2 && s == XFFL_OK; j++) {
        s = kcu_set_params(m[j], p);
        if (s == XFFL_OK) s = kcu_zero_grad(m[j]);
        if (s == XFFL_OK) s = kcu_forward(m[j], in, tg, B, T, &loss[j]);
        if (s == XFFL_OK) s = kcu_logits(m[j], 1, T - 1, lg[j]);
        if (s == XFFL_OK) s = kcu_backward(m[j]);
        if (s == XFFL_OK) s = kcu_get_grads(m[j], g[j]);
    }
    const char *pn = prec == KCU_FP32 ? "fp32" : "bf16";
    GT_CHECK(s == XFFL_OK, "recompute %s: %s", pn, xffl_errmsg());
    if (s == XFFL_OK) {
        GT_CHECK(loss[0] == loss[1], "recompute %s: loss %.9g vs %.9g", pn, loss[0], loss[1]);
        GT_CHECK(!memcmp(lg[0], lg[1], (size_t)cfg.vocab_size * 4), "recompute %s: logits differ", pn);
        for (int i = 0; i < t->count; i++) {
            const ckpt_param *pp = &t->params[i];
            if (pp->slot == CKPT_SLOT_EMBEDDING) {
                double e = gt_rel_err(g[1] + pp->offset, g[0] + pp->offset, pp->numel);
                GT_CHECK(e < 1e-6, "recompute %s: %s rel err %.3g", pn, pp->name, e);
            } else {
                GT_CHECK(!memcmp(g[1] + pp->offset, g[0] + pp->offset, (size_t)pp->numel * 4),
                         "recompute %s: gradient of %s differs", pn, pp->name);
            }
        }
    }
    free(p), free(g[0]), free(g[1]), free(lg[0]), free(lg[1]), free(in), free(tg);
    kcu_model_free(m[0]);
    kcu_model_free(m[1]);
}

void test_model_recompute_same_bits(void)
{
    recompute_case(KCU_BF16);
    recompute_case(KCU_FP32);
}
