/* train_gpu benchmark: AdamW training steps of a preset on CUDA device 0.
 * usage: xffl_gpu_bench --model base|1b|... [--batch B] [--seq T] [--steps S] [--warmup W]
 *                       [--precision bf16|fp32]
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
                    "[--precision bf16|fp32]\n");
    return 2;
}

int main(int argc, char **argv)
{
    const char *preset = NULL, *precision = "bf16";
    int B = 8, T = 1024, steps = 10, warmup = 3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("xffl_gpu_bench: tokens/s and MFU of AdamW training steps of a preset on GPU 0\n"
                   "  --model PRESET     tiny, small, base, 1b, 7b\n  --batch B --seq T  micro-batch (default 8 x 1024)\n"
                   "  --steps S --warmup W  timed and untimed steps (default 10, 3)\n"
                   "  --precision bf16|fp32\nexit codes: 0 measured or SKIP (no GPU), 1 failed, 2 usage\n");
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
    char dev[256] = "?";
    if (kcu_device_name(0, dev, sizeof dev) != XFFL_OK) snprintf(dev, sizeof dev, "?"); /* a label only */
    kcu_model *m = NULL;
    kcu_precision prec = strcmp(precision, "fp32") == 0 ? KCU_FP32 : KCU_BF16;
    float *p = NULL;
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    double t_steps = 0, loss_first = 0, loss_last = 0;
    double t_fwd = 0, t_bwd = 0, t_opt = 0; /* timed steps only: where a step's time goes */
    s = kcu_model_create(&cfg, B, T, 0, prec, &m);
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
           "\"device\": \"%s\"}\n",
           tok_s * flops_tok / 1e12, peak, B, T, steps, precision, 1000.0 * secs / steps, 1000.0 * t_fwd / steps,
           1000.0 * t_bwd / steps, 1000.0 * t_opt / steps, loss_first, loss_last,
           (long long)t->total, (unsigned long long)kcu_model_bytes(m), dev);
    kcu_model_free(m);
    free(p);
    free(in);
    free(tg);
    return 0;
}
