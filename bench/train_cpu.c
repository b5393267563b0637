/* CPU training throughput against the machine's GEMM peak at the model's shapes, and
 * memory against the analytic size.
 * usage: train_cpu [PRESET] [B] [T] [THREADS] [STEPS] [ACCUMULATE] [auto|sharded|replicated]
 *                  [fp32|bf16|auto]
 * (default small 8 256 2 12 1 auto fp32): the training loop of pipelines/loop.h in the given
 * precision, 2 warm-up steps, then STEPS timed ones: tokens/s from the median step (what
 * bench/train_cpu_torch.py measures for PyTorch). One JSON line ("skipped" for bf16 on a
 * CPU without bf16 units). FLOPs per token = 6 N + 12 L D T (N: every parameter but the
 * token embedding table, docs/design.md "Benchmarks"; attention: QK^T and PV, forward
 * 4 L D T, backward twice that, counted over the full T x T square). ref: the step's GEMMs
 * at the model's shapes in the same precision (gemm_set below), one pass after each
 * training step, median. XFFL_BENCH_NO_REF=1 skips it (profiling).
 * Analytic memory: params + grads + AdamW m, v (16 bytes per parameter) plus the
 * activations the backward needs and its scratch (kernels/cpu/model.c lists them). */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "common/util.h"
#include "kernels/cpu/bf16.h"
#include "kernels/kern.h"
#include "pipelines/loop.h"

/* The reference: the GEMMs of one training step at the model's shapes, in the step's
 * precision (OpenBLAS sgemm for fp32, oneDNN bf16 matmul for bf16), same threads: per
 * layer the fused qkv, wo, w1|w3 and w2 products, then the output projection, each as
 * forward (x W^T), input gradient (dy W) and weight gradient (dy^T x, accumulating) --
 * the machine's own peak at these shapes, in the same mode. */
typedef struct {
    int N, L, n;
    int shapes[5][2]; /* (O, K) */
    float *a, *b, *c;
    kcpu_bf16_t *ah, *bh;
    kcpu_bf16_ctx *bf;
    double flops;
} gemm_set;

static int gemm_set_init(gemm_set *g, const ckpt_model_config *c, int N, int bf16)
{
    int D = c->dim, F = c->hidden_dim, Dq = (c->n_heads + 2 * c->n_kv_heads) * (c->dim / c->n_heads);
    int sh[5][2] = {{Dq, D}, {D, D}, {2 * F, D}, {D, F}, {c->vocab_size, D}};
    memcpy(g->shapes, sh, sizeof sh);
    g->N = N, g->L = c->n_layers, g->n = 5;
    int64_t big = 0;
    for (int i = 0; i < 5; i++) big = sh[i][0] > big ? sh[i][0] : big, big = sh[i][1] > big ? sh[i][1] : big;
    /* c holds the forward's and dx's N x O, N x K and the weight gradient's O x K */
    int64_t rows = N > big ? N : big;
    g->a = malloc((size_t)N * big * 4), g->b = malloc((size_t)big * big * 4), g->c = malloc((size_t)rows * big * 4);
    g->ah = malloc((size_t)N * big * 2), g->bh = malloc((size_t)big * big * 2);
    if (!g->a || !g->b || !g->c || !g->ah || !g->bh) return -1;
    for (int64_t i = 0; i < (int64_t)N * big; i++) g->a[i] = (float)(i % 13) * 0.01f;
    memset(g->c, 0, (size_t)rows * big * 4);
    for (int64_t i = 0; i < big * big; i++) g->b[i] = (float)(i % 7) * 0.01f;
    kcpu_to_bf16(g->ah, g->a, (int64_t)N * big);
    kcpu_to_bf16(g->bh, g->b, big * big);
    if (bf16 && kcpu_bf16_create(&g->bf) != XFFL_OK) return -1;
    g->flops = 0;
    for (int i = 0; i < 5; i++) g->flops += 3 * 2.0 * N * sh[i][0] * sh[i][1] * (i < 4 ? g->L : 1);
    return 0;
}

static void gemm_set_free(gemm_set *g)
{
    free(g->a), free(g->b), free(g->c), free(g->ah), free(g->bh);
    kcpu_bf16_free(g->bf);
}

/* One pass over the set: seconds. */
static double gemm_set_run(gemm_set *g, int threads)
{
    omp_set_num_threads(threads);
    openblas_set_num_threads(threads);
    int N = g->N;
    double t0 = xffl_now();
    for (int i = 0; i < g->n; i++)
        for (int l = 0; l < (i < 4 ? g->L : 1); l++) {
            int O = g->shapes[i][0], K = g->shapes[i][1];
            if (g->bf) {
                xffl_ignore(kcpu_bf16_gemm(g->bf, 0, 1, N, O, K, g->ah, K, g->bh, K, 0.0f, g->c, O));
                xffl_ignore(kcpu_bf16_gemm(g->bf, 0, 0, N, K, O, g->ah, O, g->bh, K, 0.0f, g->c, K));
                xffl_ignore(kcpu_bf16_gemm(g->bf, 1, 0, O, K, N, g->ah, O, g->ah, K, 1.0f, g->c, K));
            } else {
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, O, K, 1, g->a, K, g->b, K, 0, g->c, O);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, K, O, 1, g->a, O, g->b, K, 0, g->c, K);
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, O, K, N, 1, g->a, O, g->a, K, 1, g->c, K);
            }
        }
    return xffl_now() - t0;
}

static double analytic_bytes(const ckpt_param_table *t, int B, int T, int threads)
{
    const ckpt_model_config *c = &t->cfg;
    double N = (double)B * T, D = c->dim, F = c->hidden_dim, V = c->vocab_size, hd = D / c->n_heads;
    double Dqkv = (c->n_heads + 2.0 * c->n_kv_heads) * hd;
    double per_layer = N * (5 * D + 2 + Dqkv + 3 * F) + (double)B * c->n_heads * T * T;
    double tail = N * D /* final stream */ + N * (D + 1) /* final norm */ + N * (V + 2) /* logits, lse, losses */ +
                  N * (3 * D + Dqkv + 3 * F) /* backward scratch */ +
                  4.0 * F * D /* w1|w3 fused copy and its gradient */ + (double)threads * T * T;
    return 4.0 * (4.0 * t->total + c->n_layers * per_layer + tail);
}

/* Training steps and reference GEMM passes alternate, so both see the same machine
 * (shared machines are noisy): after each step one pass over the GEMM set. Steps 0 and 1
 * warm up (page faults, primitive creation, BLAS buffers); then the median of each. */
enum { WARMUP = 2, MAXSTEPS = 1000 };
typedef struct {
    int threads, ref;
    gemm_set g;
    double rss_mb, step[MAXSTEPS], gemm[MAXSTEPS], cpu[MAXSTEPS], cpu_end;
    int n;
    float loss;
} bench_state;

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void after_step(void *ctx, int s, float loss, double dt)
{
    bench_state *b = ctx;
    double cpu = cpu_now() - b->cpu_end; /* the step's CPU time: since the last reference pass */
    b->loss = loss;
    if (s == 0) { /* peak RSS of training alone, before the reference buffers exist */
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        b->rss_mb = ru.ru_maxrss / 1024.0;
    }
    double sg = b->ref ? gemm_set_run(&b->g, b->threads) : 0;
    if (s >= WARMUP && b->n < MAXSTEPS) b->step[b->n] = dt, b->gemm[b->n] = sg, b->cpu[b->n] = cpu, b->n++;
    b->cpu_end = cpu_now();
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

typedef struct {
    const int32_t *in, *tg;
} fixed_batch;

/* The same batch every step (the loop's position is ignored). */
static XFFL_MUST_USE xffl_status same_batch(void *ctx, int64_t seq, int B, int T, int32_t *in, int32_t *tg)
{
    const fixed_batch *f = ctx;
    (void)seq;
    memcpy(in, f->in, (size_t)B * T * 4);
    memcpy(tg, f->tg, (size_t)B * T * 4);
    return XFFL_OK;
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "small";
    int B = argc > 2 ? atoi(argv[2]) : 8, T = argc > 3 ? atoi(argv[3]) : 256;
    int threads = argc > 4 ? atoi(argv[4]) : 2, steps = argc > 5 ? atoi(argv[5]) : 12;
    int K = argc > 6 ? atoi(argv[6]) : 1;
    const char *mode = argc > 7 ? argv[7] : "auto";
    const char *prec = argc > 8 ? argv[8] : "fp32";
    ckpt_model_config cfg;
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset(preset, 0, &cfg) != XFFL_OK || ckpt_param_table_create(&cfg, &t) != XFFL_OK) {
        fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
        return 1;
    }
    float *p = malloc((size_t)t->total * 4);
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 1, p + t->params[i].offset);
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31 + 7) % cfg.vocab_size, tg[i] = (i * 17 + 3) % cfg.vocab_size;
    fixed_batch fb = {in, tg};
    static bench_state bs; /* the step arrays: not on the stack */
    bs.threads = threads;
    bs.ref = !getenv("XFFL_BENCH_NO_REF"); /* profiling: the training alone */
    kern_precision pr;
    if (kern_precision_parse(prec, &pr) != XFFL_OK) {
        fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
        return 1;
    }
    if (pr == KERN_PREC_AUTO) pr = kern_precision_auto();
    if (pr == KERN_PREC_BF16 && !kcpu_bf16_available()) {
        printf("{\"bench\":\"train_cpu\",\"mode\":\"bf16\",\"skipped\":\"no bf16 units (onednn isa %s)\"}\n",
               kcpu_bf16_isa());
        return 0;
    }
    omp_set_num_threads(threads);
    if (bs.ref && gemm_set_init(&bs.g, &cfg, B / K * T, pr == KERN_PREC_BF16) != 0) {
        fprintf(stderr, "train_cpu: reference gemm set: %s\n", xffl_errmsg());
        return 1;
    }
    /* the micro-batch the model is planned for is B/K: its batch buffers are what K saves */
    pipe_loop_options o = {.model = &cfg, .backend = "cpu", .threads = threads, .steps = steps + WARMUP, .batch = B,
                           .seq_len = T, .accumulate = K, .next_batch = same_batch, .batch_ctx = &fb,
                           .progress = XFFL_LOG_DEBUG, .on_step = after_step, .on_step_ctx = &bs, .precision = pr};
    o.optimizer = !strcmp(mode, "sharded") ? PIPE_OPT_SHARDED : !strcmp(mode, "replicated") ? PIPE_OPT_REPLICATED
                                                                                             : PIPE_OPT_AUTO;
    kern_adamw_default(&o.adamw);
    pipe_loop_result r;
    if (pipe_loop_run(NULL, &o, p, NULL, NULL, &r) != XFFL_OK) {
        fprintf(stderr, "train_cpu: %s\n", xffl_errmsg());
        return 1;
    }
    double step_min = bs.step[0]; /* the least disturbed step on a shared machine */
    for (int i = 1; i < bs.n; i++) step_min = bs.step[i] < step_min ? bs.step[i] : step_min;
    double cpu_step = median(bs.cpu, bs.n), step = median(bs.step, bs.n), gset = bs.ref ? median(bs.gemm, bs.n) : 0;
    double Nn = (double)ckpt_param_count_nonembedding(t);
    double flops_tok = 6 * Nn + 12.0 * cfg.n_layers * cfg.dim * T;
    double tps = B * T / step, gf = tps * flops_tok / 1e9;
    /* K micro-batches per step: the set covers one micro-batch's GEMMs */
    double ref = bs.ref ? bs.g.flops / gset / 1e9 : 0;
    double an = analytic_bytes(t, B / K, T, threads) / 1048576.0;
    printf("{\"bench\":\"train_cpu\",\"mode\":\"%s\",\"value\":%.2f,\"unit\":\"GFLOP/s\",\"ref_name\":\"%s\","
           "\"ref\":%.2f,\"ratio\":%.3f,\"tokens_per_s\":%.0f,\"peak_rss_mb\":%.1f,\"analytic_mb\":%.1f,"
           "\"rss_ratio\":%.3f,\"preset\":\"%s\",\"batch\":%d,\"seq_len\":%d,\"threads\":%d,\"accumulate\":%d,"
           "\"optimizer\":\"%s\",\"host_optimizer_mb\":%.1f,\"step_s\":%.4f,\"step_min_s\":%.4f,\"cpu_step_s\":%.4f,\"steps\":%d,"
           "\"loss\":%.4f,"
           "\"isa\":\"%s\",\"onednn\":\"%s\"}\n",
           r.precision, gf, pr == KERN_PREC_BF16 ? "onednn_bf16_model_gemms" : "sgemm_model_gemms", ref,
           ref > 0 ? gf / ref : 0, tps, bs.rss_mb, an, bs.rss_mb / an, preset, B, T, threads, K,
           r.micro_batches > 1 || o.optimizer ? (r.sharded ? "sharded" : "replicated") : "backend",
           r.host_bytes / 1048576.0, step, step_min, cpu_step, bs.n, bs.loss, kern_cpu_isa(), kcpu_onednn_version());
    if (bs.ref) gemm_set_free(&bs.g);
    ckpt_param_table_free(t);
    free(p), free(in), free(tg);
    return 0;
}
