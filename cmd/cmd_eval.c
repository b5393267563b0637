/* xffl eval: mean loss and perplexity of a version on held-out token shards (the job:
 * pipelines/model.c). */
#include <math.h>
#include <stdio.h>

#include "cmd/cli.h"
#include "pipelines/model.h"

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

int cmd_eval(int argc, char **argv)
{
    const char *cmd = "eval", *url;
    int64_t version = -1;
    pipe_eval_options o = {.batch = 8};
    store_options so;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--version", CLI_VERSION, &version, 0, 0, NULL},
                            {"--data", CLI_STR, &o.data_glob, 0, 0, NULL},
                            {"--backend", CLI_STR, &o.backend, 0, 0, NULL},
                            {"--batch", CLI_LONG, &o.batch, 1, 4096, NULL},
                            {"--seq-len", CLI_LONG, &o.seq_len, 1, 1 << 20, NULL},
                            {"--batches", CLI_LONG, &o.batches, 0, 1L << 30, NULL},
                            {"--threads", CLI_INT, &o.threads, 0, 1024, NULL},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!o.data_glob) return cli_usage_error(cmd, "--data GLOB is required");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_eval_result r;
    xffl_status st = pipe_eval(s, version, &o, &r);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (cli_json)
        printf("{\"version\":%lld,\"loss\":%.6f,\"perplexity\":%.6f,\"bits_per_token\":%.6f,\"tokens\":%lld}\n",
               (long long)r.version, r.loss, exp(r.loss), r.loss / log(2.0), (long long)r.tokens);
    else
        printf("v%06lld: loss %.4f nats/token, perplexity %.4f, %.4f bits/token over %lld tokens\n",
               (long long)r.version, r.loss, exp(r.loss), r.loss / log(2.0), (long long)r.tokens);
    return 0;
}
