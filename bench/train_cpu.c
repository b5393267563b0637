/* CPU training throughput against OpenBLAS sgemm, and memory against the analytic size.
 * usage: train_cpu [PRESET] [B] [T] [THREADS] [STEPS]   (default small 8 256 2 6)
 * One JSON line. FLOPs per token = 6 N + 12 L D T (N: every parameter but the token
 * embedding table, DESIGN.md; attention: QK^T and PV, forward 4 L D T, backward twice
 * that, counted over the full T x T square). sgemm: 2048^3, same threads, best of 3.
 * Analytic memory: params + grads + AdamW m, v (16 bytes per parameter) plus the
 * activations the backward needs and its scratch (kernels/cpu/model.c lists them). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "common/util.h"
#include "kernels/kern.h"

static double sgemm_gflops(int threads)
{
    const int n = 2048;
    float *a = malloc((size_t)n * n * 4), *b = malloc((size_t)n * n * 4), *c = malloc((size_t)n * n * 4);
    for (int64_t i = 0; i < (int64_t)n * n; i++) a[i] = b[i] = (float)(i % 13) * 0.01f, c[i] = 0;
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n); /* warm */
    double best = 1e30;
    for (int r = 0; r < 3; r++) {
        double t0 = xffl_now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        double t = xffl_now() - t0;
        best = t < best ? t : best;
    }
    free(a), free(b), free(c);
    return 2.0 * n * n * n / best / 1e9;
}

static double analytic_bytes(const ckpt_param_table *t, int B, int T, int threads)
{
    const ckpt_model_config *c = &t->cfg;
    double N = (double)B * T, D = c->dim, F = c->hidden_dim, V = c->vocab_size, hd = D / c->n_heads;
    double Dqkv = (c->n_heads + 2.0 * c->n_kv_heads) * hd;
    double per_layer = N * (5 * D + 2 + Dqkv + 3 * F) + (double)B * c->n_heads * T * T;
    double tail = N * D /* final stream */ + N * (D + 1) /* final norm */ + N * (V + 2) /* logits, lse, losses */ +
                  N * (3 * D + Dqkv + 2 * F) /* backward scratch */ + (double)threads * T * T;
    return 4.0 * (4.0 * t->total + c->n_layers * per_layer + tail);
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "small";
    int B = argc > 2 ? atoi(argv[2]) : 8, T = argc > 3 ? atoi(argv[3]) : 256;
    int threads = argc > 4 ? atoi(argv[4]) : 2, steps = argc > 5 ? atoi(argv[5]) : 6;
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset(preset, 0, &cfg) != XFFL_OK || ckpt_param_table_create(&cfg, &t) != XFFL_OK) {
        fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
        return 1;
    }
    kern_options o = {.backend = "cpu", .threads = threads, .batch = B, .seq_len = T};
    kern_model *m = NULL;
    if (kern_model_create(&cfg, &o, &m) != XFFL_OK) {
        fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
        return 1;
    }
    float *p = malloc((size_t)t->total * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 1, p + t->params[i].offset);
    kern_set_params(m, p);
    free(p);
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31 + 7) % cfg.vocab_size, tg[i] = (i * 17 + 3) % cfg.vocab_size;
    kern_adamw_config ac;
    kern_adamw_default(&ac);
    float loss = 0;
    double best = 1e30;
    for (int s = 0; s <= steps; s++) { /* step 0 warms up (page faults, BLAS buffers) */
        double t0 = xffl_now();
        if (kern_zero_grad(m) || kern_forward(m, in, tg, B, T, &loss) || kern_backward(m) ||
            kern_adamw_step(m, &ac, s, NULL)) {
            fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
            return 1;
        }
        double dt = xffl_now() - t0;
        if (s > 0 && dt < best) best = dt;
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double rss_mb = ru.ru_maxrss / 1024.0;
    double Nn = (double)ckpt_param_count_nonembedding(t);
    double flops_tok = 6 * Nn + 12.0 * cfg.n_layers * cfg.dim * T;
    double tps = B * T / best, gf = tps * flops_tok / 1e9;
    double ref = sgemm_gflops(threads);
    double an = analytic_bytes(t, B, T, threads) / 1048576.0;
    printf("{\"bench\":\"train_cpu\",\"value\":%.2f,\"unit\":\"GFLOP/s\",\"ref_name\":\"sgemm\",\"ref\":%.2f,"
           "\"ratio\":%.3f,\"tokens_per_s\":%.0f,\"peak_rss_mb\":%.1f,\"analytic_mb\":%.1f,\"rss_ratio\":%.3f,"
           "\"preset\":\"%s\",\"batch\":%d,\"seq_len\":%d,\"threads\":%d,\"step_s\":%.4f,\"loss\":%.4f}\n",
           gf, ref, gf / ref, tps, rss_mb, an, rss_mb / an, preset, B, T, threads, best, loss);
    kern_model_free(m);
    ckpt_param_table_free(t);
    free(in), free(tg);
    return 0;
}
