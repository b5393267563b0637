/* The whole tiny model (GQA: 4 heads on 2 kv heads): reference model vs finite
 * differences, CPU backend vs reference model, loss at init, overfitting one batch,
 * AdamW against a hand-computed step, schedule, determinism.
 * Tolerances: finite differences on the double reference, h = 1e-5, relative error
 * <= 1e-5 of the tensor's largest gradient; fp32 backend vs double reference: loss
 * within 1e-5, each tensor's gradient within 1e-3 of its largest entry. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/cpu/ref.h"
#include "kernels/kern.h"
#include "tests/unit/unit.h"

/* t->total is int64_t; gcc cannot see it is positive */
#pragma GCC diagnostic ignored "-Walloc-size-larger-than="

static ckpt_param_table *tiny_table(void)
{
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset("tiny", 0, &cfg) != XFFL_OK) return NULL;
    if (ckpt_param_table_create(&cfg, &t) != XFFL_OK) return NULL;
    return t;
}

static float *init_params(const ckpt_param_table *t, uint64_t seed)
{
    float *p = malloc((size_t)t->total * sizeof *p);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, seed, p + t->params[i].offset);
    return p;
}

static void tokens(int32_t *in, int32_t *tg, int n, int V, uint32_t seed)
{
    uint32_t s = seed;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        in[i] = (int32_t)((s >> 8) % (uint32_t)V);
        s = s * 1664525u + 1013904223u;
        tg[i] = (int32_t)((s >> 8) % (uint32_t)V);
    }
}

static kern_model *make(const ckpt_param_table *t, int B, int T, int threads)
{
    kern_options o = {.backend = "cpu", .threads = threads, .batch = B, .seq_len = T};
    kern_model *m = NULL;
    CU_ASSERT_EQUAL(kern_model_create(&t->cfg, &o, &m), XFFL_OK);
    return m;
}

/* Perturb parameters with larger norm gains and weights so every path carries signal. */
static void perturb(const ckpt_param_table *t, float *p)
{
    uint32_t s = 7;
    for (int64_t i = 0; i < t->total; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = p[i] * 5.0f + ((float)(s >> 8) / 16777216.0f - 0.5f) * 0.05f;
    }
}

static void test_reference_model_fd(void)
{
    ckpt_param_table *t = tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { B = 2, T = 5 };
    float *pf = init_params(t, 1);
    perturb(t, pf);
    double *p = malloc((size_t)t->total * sizeof *p), *g = calloc((size_t)t->total, sizeof *g);
    for (int64_t i = 0; i < t->total; i++) p[i] = pf[i];
    int32_t in[B * T], tg[B * T];
    tokens(in, tg, B * T, t->cfg.vocab_size, 3);
    kref_model_loss(t, p, in, tg, B, T, g, NULL);
    /* every tensor, a few elements each (the embedding: rows the batch uses) */
    double worst = 0;
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *q = &t->params[i];
        double scale = 0;
        for (int64_t j = 0; j < q->numel; j++) scale = fmax(scale, fabs(g[q->offset + j]));
        for (int k = 0; k < 4; k++) {
            int64_t j = i == 0 ? (int64_t)in[k] * t->cfg.dim + k : (q->numel * (2 * k + 1)) / 8;
            double *x = &p[q->offset + j], keep = *x, h = 1e-5;
            *x = keep + h;
            double lp = kref_model_loss(t, p, in, tg, B, T, NULL, NULL);
            *x = keep - h;
            double lm = kref_model_loss(t, p, in, tg, B, T, NULL, NULL);
            *x = keep;
            double err = fabs((lp - lm) / (2 * h) - g[q->offset + j]) / fmax(scale, 1e-6);
            if (err > worst) worst = err;
            if (err > 1e-5) printf("\n  fd %s[%ld]: analytic %g numeric %g\n", q->name, (long)j, g[q->offset + j],
                                   (lp - lm) / (2 * h));
        }
    }
    CU_ASSERT(worst < 1e-5);
    free(p), free(g), free(pf);
    ckpt_param_table_free(t);
}

static void test_backend_vs_reference(void)
{
    ckpt_param_table *t = tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { B = 3, T = 17 };
    float *pf = init_params(t, 2);
    perturb(t, pf);
    double *p = malloc((size_t)t->total * sizeof *p), *g = calloc((size_t)t->total, sizeof *g);
    for (int64_t i = 0; i < t->total; i++) p[i] = pf[i];
    int32_t in[B * T], tg[B * T];
    tokens(in, tg, B * T, t->cfg.vocab_size, 4);
    double *rlog = malloc((size_t)B * T * t->cfg.vocab_size * sizeof *rlog);
    double rloss = kref_model_loss(t, p, in, tg, B, T, g, rlog);
    kern_model *m = make(t, 4, 32, 2); /* planned larger than used */
    float loss = 0, *fg = malloc((size_t)t->total * sizeof *fg), lg[256];
    CU_ASSERT_EQUAL(kern_set_params(m, pf), XFFL_OK);
    CU_ASSERT_EQUAL(kern_zero_grad(m), XFFL_OK);
    CU_ASSERT_EQUAL(kern_forward(m, in, tg, B, T, &loss), XFFL_OK);
    CU_ASSERT(fabs(loss - rloss) < 1e-5);
    double lw = 0;
    for (int b = 0; b < B; b++)
        for (int tt = 0; tt < T; tt += 4) {
            CU_ASSERT_EQUAL(kern_logits(m, b, tt, lg), XFFL_OK);
            for (int v = 0; v < 256; v++) lw = fmax(lw, fabs(lg[v] - rlog[((int64_t)b * T + tt) * 256 + v]));
        }
    CU_ASSERT(lw < 1e-4);
    CU_ASSERT_EQUAL(kern_backward(m), XFFL_OK);
    CU_ASSERT_EQUAL(kern_get_grads(m, fg), XFFL_OK);
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *q = &t->params[i];
        double scale = 0, err = 0;
        for (int64_t j = 0; j < q->numel; j++) {
            scale = fmax(scale, fabs(g[q->offset + j]));
            err = fmax(err, fabs(fg[q->offset + j] - g[q->offset + j]));
        }
        if (err > 1e-3 * scale) printf("\n  %s: max err %g of %g\n", q->name, err, scale);
        CU_ASSERT(err <= 1e-3 * scale);
        CU_ASSERT(scale > 0);
    }
    /* a second backward without forward is refused; tokens outside the vocabulary too */
    CU_ASSERT_EQUAL(kern_backward(m), XFFL_ERR_USAGE);
    in[5] = 256;
    CU_ASSERT_EQUAL(kern_forward(m, in, tg, B, T, &loss), XFFL_ERR_INVALID);
    kern_model_free(m);
    free(p), free(g), free(pf), free(fg), free(rlog);
    ckpt_param_table_free(t);
}

static void test_init_loss(void)
{
    ckpt_param_table *t = tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { B = 4, T = 64 };
    float *p = init_params(t, 42), loss = 0;
    int32_t in[B * T], tg[B * T];
    tokens(in, tg, B * T, 256, 9);
    kern_model *m = make(t, B, T, 2);
    T_OK(kern_set_params(m, p));
    CU_ASSERT_EQUAL(kern_forward(m, in, tg, B, T, &loss), XFFL_OK);
    CU_ASSERT(fabs(loss - log(256.0)) < 0.1);
    kern_model_free(m);
    free(p);
    ckpt_param_table_free(t);
}

static void run_steps(kern_model *m, const float *p0, int steps, const int32_t *in, const int32_t *tg, int B, int T,
                      float *last)
{
    kern_adamw_config c;
    kern_adamw_default(&c);
    c.lr = 3e-3f;
    c.min_lr = 3e-4f;
    c.warmup_steps = 5;
    c.total_steps = steps;
    c.weight_decay = 0.0f;
    T_OK(kern_set_params(m, p0));
    T_OK(kern_reset_optimizer(m));
    for (int s = 0; s < steps; s++) {
        T_OK(kern_zero_grad(m));
        T_OK(kern_forward(m, in, tg, B, T, last));
        T_OK(kern_backward(m));
        T_OK(kern_adamw_step(m, &c, s, NULL));
    }
}

static void test_overfit_and_determinism(void)
{
    ckpt_param_table *t = tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { B = 2, T = 32 };
    float *p = init_params(t, 5), loss = 0, loss2 = 0;
    int32_t in[B * T], tg[B * T];
    tokens(in, tg, B * T, 256, 11);
    kern_model *m = make(t, B, T, 2);
    run_steps(m, p, 150, in, tg, B, T, &loss);
    T_OK(kern_forward(m, in, tg, B, T, &loss));
    printf(" [loss after 150 steps %.4f]", loss);
    CU_ASSERT(loss < 0.05);
    float *a = malloc((size_t)t->total * sizeof *a), *b = malloc((size_t)t->total * sizeof *b);
    T_OK(kern_get_params(m, a));
    /* same thread count, fresh model: identical bits */
    kern_model *m2 = make(t, B, T, 2);
    run_steps(m2, p, 150, in, tg, B, T, &loss2);
    T_OK(kern_get_params(m2, b));
    CU_ASSERT_EQUAL(memcmp(a, b, t->total * sizeof *a), 0);
    kern_model_free(m);
    kern_model_free(m2);
    free(a), free(b), free(p);
    ckpt_param_table_free(t);
}

static void test_adamw_hand(void)
{
    ckpt_param_table *t = tiny_table();
    CU_ASSERT_PTR_NOT_NULL_FATAL(t);
    enum { B = 2, T = 8 };
    float *p = init_params(t, 6), loss;
    int32_t in[B * T], tg[B * T];
    tokens(in, tg, B * T, 256, 12);
    kern_model *m = make(t, B, T, 2);
    T_OK(kern_set_params(m, p));
    T_OK(kern_reset_optimizer(m));
    int64_t n = t->total;
    float *g = malloc((size_t)n * 4), *m0 = malloc((size_t)n * 4), *v0 = malloc((size_t)n * 4), *after = malloc((size_t)n * 4);
    float *m1 = malloc((size_t)n * 4), *v1 = malloc((size_t)n * 4);
    /* one step to get non-zero moments, then check the second step by hand */
    kern_adamw_config c;
    kern_adamw_default(&c);
    c.lr = 1e-2f;
    c.min_lr = 1e-3f;
    c.warmup_steps = 2;
    c.total_steps = 10;
    c.grad_clip = 0.5f;
    c.weight_decay = 0.1f;
    for (int s = 0; s < 2; s++) {
        T_OK(kern_zero_grad(m));
        T_OK(kern_forward(m, in, tg, B, T, &loss));
        T_OK(kern_backward(m));
        if (s == 1) {
            T_OK(kern_get_params(m, p));
            T_OK(kern_get_grads(m, g));
            T_OK(kern_get_optimizer(m, m0, v0, NULL));
        }
        float gn = 0;
        CU_ASSERT_EQUAL(kern_adamw_step(m, &c, s, &gn), XFFL_OK);
        if (s == 1) {
            double ss = 0;
            for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
            CU_ASSERT(fabs(gn - sqrt(ss)) < 1e-5 * sqrt(ss));
        }
    }
    int64_t step;
    T_OK(kern_get_params(m, after));
    T_OK(kern_get_optimizer(m, m1, v1, &step));
    CU_ASSERT_EQUAL(step, 2);
    double ss = 0;
    for (int64_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    double clip = sqrt(ss) > 0.5 ? 0.5 / sqrt(ss) : 1.0;
    CU_ASSERT(clip < 1.0); /* the test exercises clipping */
    double lr = 1e-2; /* step index 1 with warmup 2: lr * 2/2 */
    CU_ASSERT(fabs(kern_lr_at(&c, 1) - lr) < 1e-9);
    double bc1 = 1 - 0.9 * 0.9, bc2 = 1 - 0.95 * 0.95, worst = 0;
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *q = &t->params[i];
        double wd = q->kind == CKPT_KIND_NORM ? 0 : 0.1;
        for (int64_t j = q->offset; j < q->offset + q->numel; j++) {
            double gi = g[j] * clip, mi = 0.9 * m0[j] + 0.1 * gi, vi = 0.95 * v0[j] + 0.05 * gi * gi;
            double pe = p[j] - lr * ((mi / bc1) / (sqrt(vi / bc2) + 1e-8) + wd * p[j]);
            worst = fmax(worst, fabs(pe - after[j]));
            worst = fmax(worst, fabs(mi - m1[j]) * 1e3);
        }
    }
    CU_ASSERT(worst < 1e-5);
    kern_model_free(m);
    free(g), free(m0), free(v0), free(m1), free(v1), free(after), free(p);
    ckpt_param_table_free(t);
}

static void test_schedule(void)
{
    kern_adamw_config c;
    kern_adamw_default(&c);
    c.lr = 1.0f;
    c.min_lr = 0.1f;
    c.warmup_steps = 4;
    c.total_steps = 14;
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 0), 0.25, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 3), 1.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 4), 1.0, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 9), 0.55, 1e-6); /* half way down the cosine */
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 14), 0.1, 1e-7);
    CU_ASSERT_DOUBLE_EQUAL(kern_lr_at(&c, 100), 0.1, 1e-7);
    kern_options o = {.backend = "tpu", .batch = 1, .seq_len = 8};
    kern_model *m = NULL;
    ckpt_model_config cfg;
    T_OK(ckpt_model_preset("tiny", 0, &cfg));
    CU_ASSERT_EQUAL(kern_model_create(&cfg, &o, &m), XFFL_ERR_USAGE);
    o.backend = "cpu";
    o.seq_len = cfg.max_seq_len + 1;
    CU_ASSERT_EQUAL(kern_model_create(&cfg, &o, &m), XFFL_ERR_USAGE);
    kern_model_free(NULL);
}

void suite_kern_model(void)
{
    CU_pSuite s = CU_add_suite("kern_model", NULL, NULL);
    CU_add_test(s, "tiny reference model vs finite differences (every tensor)", test_reference_model_fd);
    CU_add_test(s, "cpu backend vs reference model: loss, logits, every gradient", test_backend_vs_reference);
    CU_add_test(s, "loss at init within 0.1 of ln(256)", test_init_loss);
    CU_add_test(s, "overfit one batch below 0.05; identical bits run to run", test_overfit_and_determinism);
    CU_add_test(s, "adamw step by hand (clipping, no decay on norms)", test_adamw_hand);
    CU_add_test(s, "lr schedule, bad backend and sizes", test_schedule);
}
