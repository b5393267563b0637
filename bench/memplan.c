/* The memory plan (pipelines/memplan.h) against the measured peak of one cpu rank.
 * usage: memplan [PRESET] [B] [T] [THREADS] [STEPS]   (default base 1 1024 2 1)
 * One JSON line: the peak resident set while the model is created and trained for
 * STEPS AdamW steps, minus the resident set just before kern_model_create (the host
 * weights it is loaded from exist already, as in the train job), against the plan's
 * total for one rank; the target is within 10 %. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "kernels/kern.h"
#include "pipelines/memplan.h"

/* VmRSS or VmHWM of this process in bytes, from /proc/self/status; 0 if unreadable. */
static uint64_t status_bytes(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    uint64_t kb = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') kb = strtoull(line + n + 1, NULL, 10);
    fclose(f);
    return kb * 1024;
}

static int die(void)
{
    fprintf(stderr, "memplan: %s\n", xffl_errmsg());
    return 1;
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "base";
    int B = argc > 2 ? atoi(argv[2]) : 1, T = argc > 3 ? atoi(argv[3]) : 1024;
    int threads = argc > 4 ? atoi(argv[4]) : 2, steps = argc > 5 ? atoi(argv[5]) : 1;
    pipe_memplan_config c = {.backend = "cpu", .ranks = 1, .batch = B, .seq_len = T, .threads = threads};
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset(preset, 0, &c.model) != XFFL_OK || ckpt_param_table_create(&c.model, &t) != XFFL_OK)
        return die();
    pipe_memplan plan;
    if (pipe_memplan_compute(&c, &plan) != XFFL_OK) return die();
    float *p = malloc((size_t)t->total * 4);
    int32_t *in = malloc((size_t)B * T * 4), *tg = malloc((size_t)B * T * 4);
    if (!p || !in || !tg) return fprintf(stderr, "memplan: out of memory\n"), 1;
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 1, p + t->params[i].offset);
    for (int i = 0; i < B * T; i++) in[i] = (i * 31 + 7) % c.model.vocab_size, tg[i] = (i * 17 + 3) % c.model.vocab_size;
    /* the peak so far (the weights' initialisation) is not the model's: reset it */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) fputs("5", cr), fclose(cr);
    uint64_t before = status_bytes("VmRSS");
    kern_options o = {.backend = "cpu", .threads = threads, .batch = B, .seq_len = T};
    kern_model *m = NULL;
    if (kern_model_create(&c.model, &o, &m) != XFFL_OK || kern_set_params(m, p) != XFFL_OK) return die();
    kern_adamw_config ac;
    kern_adamw_default(&ac);
    float loss = 0;
    double t0 = xffl_now();
    for (int s = 0; s < steps; s++)
        if (kern_zero_grad(m) || kern_forward(m, in, tg, B, T, &loss) || kern_backward(m) ||
            kern_adamw_step(m, &ac, s, NULL))
            return die();
    double secs = xffl_now() - t0;
    uint64_t peak = status_bytes("VmHWM"), measured = peak > before ? peak - before : 0;
    double ratio = (double)measured / (double)plan.total;
    printf("{\"bench\":\"memplan\",\"value\":%.1f,\"unit\":\"MiB\",\"ref_name\":\"plan\",\"ref\":%.1f,\"ratio\":%.3f,"
           "\"within_10pct\":%s,\"ranks\":1,\"preset\":\"%s\",\"batch\":%d,\"seq_len\":%d,\"threads\":%d,"
           "\"steps\":%d,\"step_s\":%.2f,\"rss_before_mib\":%.1f,\"peak_rss_mib\":%.1f,\"backend_slab_mib\":%.1f,"
           "\"loss\":%.4f}\n",
           measured / 1048576.0, plan.total / 1048576.0, ratio, ratio > 0.9 && ratio < 1.1 ? "true" : "false",
           preset, B, T, threads, steps, steps ? secs / steps : 0.0, before / 1048576.0, peak / 1048576.0,
           kern_model_bytes(m) / 1048576.0, loss);
    kern_model_free(m);
    ckpt_param_table_free(t);
    free(p), free(in), free(tg);
    return 0;
}
