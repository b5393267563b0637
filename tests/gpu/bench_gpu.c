/* train_gpu benchmark: AdamW training steps of a preset on CUDA device 0.
 * usage: xffl_gpu_bench --model base|1b|... [--batch B] [--seq T] [--steps S] [--warmup W]
 *                       [--precision bf16|fp32] [--recompute]
 * A T above the preset's max_seq_len raises it (RoPE is defined at any position; the bench
 * measures speed). Before allocating, the memory plan (pipelines/memplan.h, the one
 * `xffl train --dry-run` prints) is compared with the device's free memory: a plan that does
 * not fit prints SKIP on stderr and nothing on stdout (exit 0).
 * peak_mem_gb: device memory the process holds after the timed steps (cudaMemGetInfo against
 * before the model existed: the slab and cuBLAS's workspace; nothing is allocated per step),
 * in 1e9 bytes as tests/torch_ref.py's max_memory_allocated.
 * Prints one JSON line: tokens/s and model FLOPs utilisation against the device's bf16
 * dense peak (H100/H200 SXM: 989 TFLOP/s; XFFL_PEAK_TFLOPS overrides). FLOPs per token are
 * 6 N + 12 L D T (N: parameters except the token embedding; the attention term counts QK^T
 * and PV forward and backward without the causal halving, as PaLM's MFU does).
 * Exit codes: 0 measured, 1 failed, 2 usage; prints SKIP and exits 0 without a GPU. */
#include <cuda_runtime_api.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/cuda/model.h"
#include "pipelines/memplan.h"
#include "tests/gpu/gpu_test.h"

static double peak_tflops(const char *name)
{
    const char *e = getenv("XFFL_PEAK_TFLOPS");
    if (e && *e) return atof(e);
    if (strstr(name, "H100") || strstr(name, "H200") || strstr(name, "GH200")) return 989.0;
    if (strstr(name, "A100")) return 312.0;
    return 0.0;
}

static int usage(void)
{
    fprintf(stderr, "usage: xffl_gpu_bench --model PRESET [--batch B] [--seq T] [--steps S] [--warmup W] "
                    "[--precision bf16|fp32] [--recompute]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *preset = NULL, *precision = "bf16";
    int B = 8, T = 1024, steps = 10, warmup = 3, recompute = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--recompute")) {
            recompute = 1;
            continue;
        }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("xffl_gpu_bench: tokens/s and MFU of AdamW training steps of a preset on GPU 0\n"
                   "  --model PRESET     tiny, small, base, 1b, 7b\n  --batch B --seq T  micro-batch (default 8 x 1024)\n"
                   "  --steps S --warmup W  timed and untimed steps (default 10, 3)\n"
                   "  --precision bf16|fp32\n  --recompute        keep only layer inputs, rebuild in the backward\n"
                   "exit codes: 0 measured or SKIP (no GPU, or the memory plan does not fit), 1 failed, 2 usage\n");
            return 0;
        }
        if (!v) return usage();
        if (!strcmp(a, "--model")) preset = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--seq")) T = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--precision")) precision = v;
        else return usage();
        i++;
    }
    if (!preset || B <= 0 || T <= 0 || steps <= 0 || warmup < 0) return usage();
    int ndev = 0;
    if (kcu_device_count(&ndev) != XFFL_OK) {
        printf("SKIP: no GPU visible (%s)\n", xffl_errmsg());
        return 0;
    }
    ckpt_model_config cfg;
    xffl_status s = ckpt_model_preset(preset, 0, &cfg);
    if (s != XFFL_OK) {
        fprintf(stderr, "xffl_gpu_bench: %s\n", xffl_errmsg());
        return 2;
    }
    int raised = T > cfg.max_seq_len;
    if (raised) cfg.max_seq_len = T;
    char dev[256] = "?";
    if (kcu_device_name(0, dev, sizeof dev) != XFFL_OK) snprintf(dev, sizeof dev, "?"); /* a label only */
    kcu_model *m = NULL;
    kcu_precision prec = strcmp(precision, "fp32") == 0 ? KCU_FP32 : KCU_BF16;
    size_t free0 = 0, total0 = 0;
    if (cudaSetDevice(0) != cudaSuccess || cudaFree(NULL) != cudaSuccess || cudaMemGetInfo(&free0, &total0) != cudaSuccess) {
        fprintf(stderr, "xffl_gpu_bench: cudaMemGetInfo on device 0 failed\n");
        return 1;
    }
    {
        const char *att = getenv("XFFL_CUDA_ATTENTION"); /* what kcu_model_create reads */
        pipe_memplan_config pc = {.model = cfg, .backend = "cuda", .fp32 = prec == KCU_FP32, .ranks = 1, .batch = B,
                                  .seq_len = T, .threads = 1, .recompute = recompute,
                                  .attn_reference = att && !strcmp(att, "reference")};
        pipe_memplan plan;
        s = pipe_memplan_compute(&pc, &plan);
        if (s != XFFL_OK) {
            fprintf(stderr, "xffl_gpu_bench: memory plan: %s\n", xffl_errmsg());
            return 1;
        }
        /* the plan counts the slab; cuBLAS's workspace is in the 1 GiB of runtime kept aside */
        if (plan.total + (1ull << 30) > free0) {
            fprintf(stderr, "SKIP: %s %d x %d%s: planned %.2f GiB + 1 GiB runtime, %.2f GiB free on %s\n", preset, B, T,
                    recompute ? " (recompute)" : "", plan.total / 1073741824.0, free0 / 1073741824.0, dev);
            return 0;
        }
    }
    float *p = NULL;
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    double t_steps = 0, loss_first = 0, loss_last = 0;
    double t_fwd = 0, t_bwd = 0, t_opt = 0; /* timed steps only: where a step's time goes */
    s = kcu_model_create_ex(&cfg, B, T, 0, prec, recompute, &m);
    if (s == XFFL_OK) {
        fprintf(stderr, "xffl_gpu_bench: %s on %s, %d x %d tokens, %.2f GiB slab\n", preset, dev, B, T,
                kcu_model_bytes(m) / 1073741824.0);
        p = gt_init_params(kcu_model_table(m), 1);
        if (!p) s = xffl_fail(XFFL_ERR_NOMEM, "parameters");
    }
    if (s == XFFL_OK) s = kcu_set_params(m, p);
    kcu_adamw_args a = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 1.0f};
    for (int i = 0; s == XFFL_OK && i < warmup + steps; i++) {
        if (i == warmup) t_steps = xffl_now();
        gt_tokens(in, (int64_t)B * T, 100 + i, cfg.vocab_size);
        gt_tokens(tg, (int64_t)B * T, 200 + i, cfg.vocab_size);
        float loss = 0, gn = 0;
        double t0 = xffl_now(), t1 = 0, t2 = 0;
        s = kcu_zero_grad(m);
        if (s == XFFL_OK) s = kcu_forward(m, in, tg, B, T, &loss); /* returns the loss: synchronised */
        t1 = xffl_now();
        if (s == XFFL_OK) s = kcu_backward(m);
        if (s == XFFL_OK) s = kcu_sync(m, "backward");
        t2 = xffl_now();
        if (s == XFFL_OK) s = kcu_adamw_step(m, &a, &gn); /* ends with a stream sync */
        if (i >= warmup) {
            t_fwd += t1 - t0;
            t_bwd += t2 - t1;
            t_opt += xffl_now() - t2;
        }
        if (i == 0) loss_first = loss;
        loss_last = loss;
    }
    if (s != XFFL_OK) {
        fprintf(stderr, "xffl_gpu_bench: %s (%s)\n", xffl_errmsg(), xffl_strerror(s));
        kcu_model_free(m);
        return 1;
    }
    double secs = xffl_now() - t_steps;
    size_t free1 = 0;
    double peak_gb = cudaMemGetInfo(&free1, &total0) == cudaSuccess ? (double)(free0 - free1) / 1e9 : NAN;
    double tok_s = (double)steps * B * T / secs;
    const ckpt_param_table *t = kcu_model_table(m);
    double flops_tok = 6.0 * (double)ckpt_param_count_nonembedding(t) + 12.0 * cfg.n_layers * cfg.dim * (double)T;
    double peak = peak_tflops(dev);
    double mfu = peak > 0 ? tok_s * flops_tok / (peak * 1e12) : NAN;
    printf("{\"bench\": \"train_gpu\", \"model\": \"%s\", \"value\": %.1f, \"unit\": \"tokens/s\", \"mfu\": ", preset,
           tok_s);
    if (isnan(mfu)) printf("null");
    else printf("%.4f", mfu);
    printf(", \"tflops\": %.1f, \"peak_tflops\": %.0f, \"batch\": %d, \"seq\": %d, \"steps\": %d, \"precision\": \"%s\", "
           "\"step_ms\": %.2f, \"forward_ms\": %.2f, \"backward_ms\": %.2f, \"optimizer_ms\": %.2f, \"loss_first\": %.4f, \"loss_last\": %.4f, \"params\": %lld, \"gpu_bytes\": %llu, "
           "\"peak_mem_gb\": %.2f, \"recompute\": %d, \"attention\": \"%s\", \"max_seq_len_raised\": %d, \"device\": \"%s\"}\n",
           tok_s * flops_tok / 1e12, peak, B, T, steps, precision, 1000.0 * secs / steps, 1000.0 * t_fwd / steps,
           1000.0 * t_bwd / steps, 1000.0 * t_opt / steps, loss_first, loss_last,
           (long long)t->total, (unsigned long long)kcu_model_bytes(m), peak_gb, recompute,
           kcu_model_fused(m) ? "fused" : "gemm", raised, dev);
    kcu_model_free(m);
    free(p);
    free(in);
    free(tg);
    return 0;
}
