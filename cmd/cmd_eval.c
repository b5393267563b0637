/* xffl eval: mean loss and perplexity of a version on held-out token shards. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/cli_model.h"
#include "common/util.h"
#include "kernels/kern.h"
#include "kernels/train.h"
#include "text/loader.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl eval --store URL [--version V] --data GLOB [--batch B] [--seq-len T]\n"
            "                 [--batches N] [--threads N] [--backend cpu|cuda] [store flags]\n"
            "\n"
            "Mean cross-entropy of version V on the shards matching GLOB (llm.c format, e.g.\n"
            "DIR/*_val_*.bin from `xffl data pack`), read in order from their start: N batches\n"
            "of B sequences of T tokens (default: every sequence once). Prints the loss in nats\n"
            "per token, the perplexity exp(loss) and bits per token on stdout.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest' (default)\n"
            "  --data GLOB             token shards (quote it)\n"
            "  --batch B               sequences per batch (default 8)\n"
            "  --seq-len T             tokens per sequence (default min(256, the model's max))\n"
            "  --batches N             batches to evaluate (default 0: the shards once)\n"
            "  --threads N             CPU threads (default: all cores)\n"
            "  --backend B             cpu, cuda or auto (default)\n"
            "  --json                  result as one JSON object (global flag)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 done, 1 failed, 2 usage, 65 invalid or corrupt version or shard\n"
            "(e.g. a token outside the vocabulary), 74 store unreachable\n");
}

typedef struct {
    text_loader *sh;
    text_cursor c;
} shard_src;

static xffl_status next_batch(void *ctx, int B, int T, int32_t *in, int32_t *tg)
{
    shard_src *s = ctx;
    return text_loader_next(s->sh, &s->c, B, T, in, tg);
}

int cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval", *url = NULL, *ver = "latest", *glob = NULL, *backend = NULL;
    long B = 8, T = 0, batches = 0, threads = 0;
    store_options so;
    store_options_default(&so);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--version", CLI_STR, &ver, 0, 0, NULL},
                            {"--data", CLI_STR, &glob, 0, 0, NULL},
                            {"--backend", CLI_STR, &backend, 0, 0, NULL},
                            {"--batch", CLI_LONG, &B, 1, 4096, NULL},
                            {"--seq-len", CLI_LONG, &T, 1, 1 << 20, NULL},
                            {"--batches", CLI_LONG, &batches, 0, 1L << 30, NULL},
                            {"--threads", CLI_LONG, &threads, 0, 1024, NULL},
                            {0}};
    int rc = cli_parse(cmd, argc, argv, opts, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!glob) return cli_usage_error(cmd, "--data GLOB is required");
    ckpt_param_table *t = NULL;
    float *p = NULL;
    kern_model *m = NULL;
    shard_src src = {0};
    pipe_version_ref ref = {.version = -1};
    double loss = 0;
    xffl_status st = cli_model_load(url, &so, ver, &t, &p, &ref);
    if (st == XFFL_OK && T == 0) T = t->cfg.max_seq_len < 256 ? t->cfg.max_seq_len : 256;
    if (st == XFFL_OK && T > t->cfg.max_seq_len)
        st = xffl_fail(XFFL_ERR_USAGE, "--seq-len %ld exceeds the model's max_seq_len %d", T, t->cfg.max_seq_len);
    if (st == XFFL_OK) st = text_loader_open(glob, t->cfg.vocab_size, &src.sh);
    if (st == XFFL_OK && batches == 0) {
        /* every sequence once, roughly: tokens / T sequences */
        int64_t seqs = text_loader_tokens(src.sh) / (T + 1);
        batches = seqs / B > 0 ? (long)(seqs / B) : 1;
        if (seqs < B) B = seqs > 0 ? (long)seqs : 1;
    }
    if (st == XFFL_OK) {
        kern_options ko = {.backend = backend, .threads = (int)threads, .batch = (int)B, .seq_len = (int)T};
        st = kern_model_create(&t->cfg, &ko, &m);
    }
    if (st == XFFL_OK) st = kern_set_params(m, p);
    if (st == XFFL_OK) {
        xffl_log(XFFL_LOG_INFO, "v%06lld on %s: %ld batches of %ld x %ld tokens", (long long)ref.version, glob, batches,
                 B, T);
        st = kern_eval(m, (int)B, (int)T, (int)batches, next_batch, &src, &loss);
    }
    if (st == XFFL_OK) {
        int64_t ntok = (int64_t)batches * B * T;
        if (cli_json)
            printf("{\"version\":%lld,\"loss\":%.6f,\"perplexity\":%.6f,\"bits_per_token\":%.6f,\"tokens\":%lld}\n",
                   (long long)ref.version, loss, exp(loss), loss / log(2.0), (long long)ntok);
        else
            printf("v%06lld: loss %.4f nats/token, perplexity %.4f, %.4f bits/token over %lld tokens\n",
                   (long long)ref.version, loss, exp(loss), loss / log(2.0), (long long)ntok);
    }
    text_loader_close(src.sh);
    kern_model_free(m);
    free(p);
    ckpt_param_table_free(t);
    return cli_report(cmd, st);
}
