/* The memory plan (pipelines/memplan.h) against the measured peak of each rank of the
 * training loop (pipelines/loop.h). usage: memplan [PRESET] [B] [T] [THREADS] [STEPS]
 * (default base 1 1024 2 1); B is one rank's micro-batch. Run alone for one rank, under
 * mpirun -np R for R ranks (comm "auto"). One JSON line per rank: the peak resident set
 * while the loop runs STEPS AdamW steps, minus the resident set just before it (the
 * transport and the host weights it starts from exist already, as in the train job),
 * against the plan's per-rank total; the target is within 10 %. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"
#include "pipelines/loop.h"
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

static int vocab;

/* Deterministic token ids: sequence seq's token t. */
static xffl_status synth(void *ctx, int64_t seq, int B, int T, int32_t *in, int32_t *tg)
{
    (void)ctx;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int64_t q = (seq + b) * (T + 1) + t;
            in[b * T + t] = (int32_t)((q * 31 + 7) % vocab), tg[b * T + t] = (int32_t)(((q + 1) * 31 + 7) % vocab);
        }
    return XFFL_OK;
}

int main(int argc, char **argv)
{
    const char *preset = argc > 1 ? argv[1] : "base";
    int B = argc > 2 ? atoi(argv[2]) : 1, T = argc > 3 ? atoi(argv[3]) : 1024;
    int threads = argc > 4 ? atoi(argv[4]) : 2, steps = argc > 5 ? atoi(argv[5]) : 1;
    xffl_comm *comm = NULL;
    if (comm_open("auto", NULL, &comm) != XFFL_OK) return die();
    int R = comm_size(comm), rank = comm_rank(comm);
    pipe_memplan_config c = {.backend = "cpu", .ranks = R, .zero = 2, .batch = B, .seq_len = T, .threads = threads};
    ckpt_param_table *t = NULL;
    if (ckpt_model_preset(preset, 0, &c.model) != XFFL_OK || ckpt_param_table_create(&c.model, &t) != XFFL_OK)
        return die();
    vocab = c.model.vocab_size;
    pipe_memplan plan;
    if (pipe_memplan_compute(&c, &plan) != XFFL_OK) return die();
    float *p = malloc((size_t)t->total * 4);
    if (!p) return fprintf(stderr, "memplan: out of memory\n"), 1;
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, 1, p + t->params[i].offset);
    pipe_loop_options o = {.model = &c.model, .backend = "cpu", .threads = threads, .steps = steps,
                           .batch = B * R, .seq_len = T, .next_batch = synth, .progress = XFFL_LOG_DEBUG};
    kern_adamw_default(&o.adamw);
    /* the peak so far (the weights' initialisation) is not the loop's: reset it */
    FILE *cr = fopen("/proc/self/clear_refs", "w");
    if (cr) fputs("5", cr), fclose(cr);
    uint64_t before = status_bytes("VmRSS");
    float *losses = calloc((size_t)(steps > 0 ? steps : 1), sizeof *losses);
    pipe_loop_result r;
    double t0 = xffl_now();
    if (!losses || pipe_loop_run(comm, &o, p, NULL, losses, &r) != XFFL_OK) return die();
    double secs = xffl_now() - t0;
    uint64_t peak = status_bytes("VmHWM"), measured = peak > before ? peak - before : 0;
    double ratio = (double)measured / (double)plan.total;
    printf("{\"bench\":\"memplan\",\"value\":%.1f,\"unit\":\"MiB\",\"ref_name\":\"plan\",\"ref\":%.1f,\"ratio\":%.3f,"
           "\"within_10pct\":%s,\"ranks\":%d,\"rank\":%d,\"preset\":\"%s\",\"batch\":%d,\"seq_len\":%d,\"threads\":%d,"
           "\"steps\":%d,\"step_s\":%.2f,\"rss_before_mib\":%.1f,\"peak_rss_mib\":%.1f,\"backend_mib\":%.1f,"
           "\"host_mib\":%.1f,\"loss\":%.4f}\n",
           measured / 1048576.0, plan.total / 1048576.0, ratio, ratio > 0.9 && ratio < 1.1 ? "true" : "false", R,
           rank, preset, B, T, threads, steps, steps ? secs / steps : 0.0, before / 1048576.0, peak / 1048576.0,
           r.backend_bytes / 1048576.0, r.host_bytes / 1048576.0, steps ? losses[steps - 1] : 0.0f);
    fflush(stdout);
    comm_close(comm);
    ckpt_param_table_free(t);
    free(p), free(losses);
    return 0;
}
