/* xffl train --dry-run: one rank's memory plan (pipelines/memplan.h), as text or JSON. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "pipelines/memplan.h"

static const char *help =
    "usage: xffl train --dry-run (--model PRESET | --store URL) [--backend cpu|cuda]\n"
    "                  [--ranks N] [--zero 0|1|2] [--device-memory SIZE] [--batch B]\n"
    "                  [--seq-len T] [--accumulate K] [--recompute] [--threads N]\n"
    "                  [--precision auto|fp32|bf16]\n"
    "                  [--reserve SIZE]\n"
    "\n"
    "Prints what one rank of a train job holds: parameters, gradients, optimizer state,\n"
    "activations and communication buffers, buffer by buffer, and ends with one line:\n"
    "'fits (X to spare)' or 'does not fit: X short'. Writes nothing; --model needs no\n"
    "store; --store takes the model, batch and sequence length from federation.h5.\n"
    "\n"
    "  --model PRESET       tiny, small, base, 1b or 7b (federation defaults otherwise)\n"
    "  --backend B          cpu (default) or cuda (XFFL_CUDA_PRECISION=fp32: fp32 GEMMs)\n"
    "  --ranks N            ranks sharing the job (default 1)\n"
    "  --zero S             ZeRO stage with several ranks (default 2): 1 shards the fp32\n"
    "                       master weights and AdamW moments, 2 the gradients too\n"
    "  --device-memory SIZE memory of one rank (G = GiB); cpu default: this machine's\n"
    "                       memory over the ranks; required with cuda\n"
    "  --batch B            sequences in one rank's micro-batch (default: the\n"
    "                       federation's batch over ranks x accumulate, rounded up)\n"
    "  --seq-len T          tokens per sequence (default: the federation's)\n"
    "  --accumulate K       micro-batches per rank per step, for the default batch\n"
    "  --recompute          recompute each layer's activations in the backward\n"
    "  --threads N          cpu threads (default: all cores)\n"
    "  --precision P        cpu: the bf16 mode's copies count with bf16 (auto: where\n"
    "                       this CPU has bf16 units, as train's default)\n"
    "  --reserve SIZE       memory the runtime takes besides xffl's buffers (default\n"
    "                       1G on cuda: CUDA context, cuBLAS, NCCL; 0 on cpu)\n" CLI_STORE_FLAGS_HELP
    "\n"
    "exit codes: 0 planned (whether it fits or not), 2 usage, 74 store unreachable.\n";

/* 1.5 GiB as "1.50 GiB", smaller in MiB or KiB. */
static const char *human(uint64_t b, char *out, size_t cap)
{
    if (b >= 1ull << 30) snprintf(out, cap, "%.2f GiB", b / 1073741824.0);
    else if (b >= 1ull << 20) snprintf(out, cap, "%.1f MiB", b / 1048576.0);
    else snprintf(out, cap, "%.1f KiB", b / 1024.0);
    return out;
}

static void print_json(const pipe_memplan *p)
{
    const pipe_memplan_config *c = &p->cfg;
    printf("{\"backend\":\"%s\",\"precision\":\"%s\",\"ranks\":%d,\"zero\":%d,\"recompute\":%s,\"batch\":%d,"
           "\"seq_len\":%d,\"parameters\":%" PRId64 ",\"shard\":%" PRId64 ",\"unit\":%" PRId64 ",\"items\":[",
           c->backend, !strcmp(c->backend, "cuda") && !c->fp32 ? "bf16" : "fp32", c->ranks, c->zero,
           c->recompute ? "true" : "false", c->batch, c->seq_len, p->params, p->shard, p->unit);
    for (int i = 0; i < p->n_items; i++) {
        const pipe_mem_item *it = &p->items[i];
        printf("%s{\"kind\":\"%s\",\"what\":", i ? "," : "", pipe_mem_kind_name(it->kind));
        cli_json_str(it->what);
        printf(",\"count\":%d,\"bytes\":%" PRIu64 "}", it->count, (uint64_t)it->count * it->each);
    }
    printf("],\"per_rank\":{");
    for (int k = 0; k < PIPE_MEM_KINDS; k++)
        printf("%s\"%s\":%" PRIu64, k ? "," : "", pipe_mem_kind_name(k), p->kind_bytes[k]);
    printf("},\"total\":%" PRIu64 ",\"device_memory\":%" PRIu64 ",\"fits\":%s,\"layout\":\"%s\"}\n", p->total,
           c->device_memory, p->fits < 0 ? "null" : p->fits ? "true" : "false", p->target ? "target" : "allocated");
}

static void print_text(const pipe_memplan *p)
{
    const pipe_memplan_config *c = &p->cfg;
    char a[32], b[32];
    printf("memory plan per rank: %s (%" PRId64 " parameters), %s %s, %d rank%s", p->model, p->params, c->backend,
           !strcmp(c->backend, "cuda") && !c->fp32 ? "bf16" : "fp32", c->ranks, c->ranks > 1 ? "s" : "");
    if (c->ranks > 1) printf(" (ZeRO-%d)", c->zero);
    printf(", micro-batch %d x %d tokens%s\n", c->batch, c->seq_len, c->recompute ? ", recompute" : "");
    if (p->target)
        printf("  (the target layout, docs/design.md \"Memory plan\": the training loop does not allocate it yet)\n");
    for (int k = 0; k < PIPE_MEM_KINDS; k++) {
        if (!p->kind_bytes[k] && (k == PIPE_MEM_RUNTIME || k == PIPE_MEM_COMM)) continue;
        printf("  %-68s %12s\n", pipe_mem_kind_name(k), human(p->kind_bytes[k], a, sizeof a));
        for (int i = 0; i < p->n_items; i++) {
            const pipe_mem_item *it = &p->items[i];
            if ((int)it->kind != k) continue;
            char what[PIPE_MEMPLAN_WHAT_MAX + 16];
            if (it->count > 1) snprintf(what, sizeof what, "%s x %d", it->what, it->count);
            else snprintf(what, sizeof what, "%s", it->what);
            printf("    %-66s %12s\n", what, human((uint64_t)it->count * it->each, a, sizeof a));
        }
    }
    if (p->fits < 0) {
        printf("  %-68s %12s\nno verdict: the memory per rank is unknown (--device-memory SIZE)\n", "total",
               human(p->total, a, sizeof a));
        return;
    }
    printf("  %-68s %12s of %s\n", "total", human(p->total, a, sizeof a), human(c->device_memory, b, sizeof b));
    if (p->fits) printf("fits (%s to spare)\n", human(c->device_memory - p->total, a, sizeof a));
    else printf("does not fit: %s short\n", human(p->total - c->device_memory, a, sizeof a));
}

int cli_train_dry_run(int argc, char **argv)
{
    const char *cmd = "train";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    pipe_train_plan_options o;
    pipe_train_plan_options_default(&o);
    int dry = 0;
    uint64_t reserve = 0;
    int reserve_seen = 0;
    const char *url, *precision = "auto";
    store_options so;
    const cli_opt opts[] = {{"--dry-run", CLI_FLAG, &dry, 0, 0, NULL},
                            {"--model", CLI_STR, &o.preset, 1, 0, NULL},
                            {"--backend", CLI_STR, &o.backend, 1, 0, NULL},
                            {"--ranks", CLI_INT, &o.ranks, 1, 65536, NULL},
                            {"--zero", CLI_INT, &o.zero, 0, 2, NULL},
                            {"--device-memory", CLI_SIZE, &o.device_memory, 0, 0, NULL},
                            {"--batch", CLI_INT, &o.batch, 1, 1 << 20, NULL},
                            {"--seq-len", CLI_INT, &o.seq_len, 1, 1 << 24, NULL},
                            {"--accumulate", CLI_INT, &o.accumulate, 1, 1 << 20, NULL},
                            {"--recompute", CLI_FLAG, &o.recompute, 0, 0, NULL},
                            {"--threads", CLI_INT, &o.threads, 0, 1024, NULL},
                            {"--precision", CLI_STR, &precision, 0, 0, NULL},
                            {"--reserve", CLI_SIZE, &reserve, 0, 0, &reserve_seen},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (reserve_seen) o.reserve = (int64_t)reserve;
    xffl_status pst = kern_precision_parse(precision, &o.precision);
    if (pst != XFFL_OK) return cli_report(cmd, pst);
    if (o.backend && strcmp(o.backend, "cpu") && strcmp(o.backend, "cuda") && strcmp(o.backend, "auto"))
        return cli_usage_error(cmd, "--backend must be cpu, cuda or auto, not '%s'", o.backend);
    if (url && o.preset) return cli_usage_error(cmd, "--model and --store are exclusive (the store has its model)");
    store *s = NULL;
    if (url && (rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_memplan p;
    xffl_status st = pipe_train_plan(s, &o, &p);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (cli_json) print_json(&p);
    else print_text(&p);
    return 0;
}
