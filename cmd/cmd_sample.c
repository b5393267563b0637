/* xffl sample: generate text from a version, with the federation's tokenizer or
 * byte-level (the job: pipelines/model.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "pipelines/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl sample --store URL [--version V] --prompt TEXT [--temperature T] [--tokens N]\n"
            "                   [--seed S] [--threads N] [--backend cpu|cuda] [store flags]\n"
            "\n"
            "Continues TEXT with N tokens from version V and prints prompt + continuation on\n"
            "stdout. Tokens are bytes, or SentencePiece pieces when the federation was made with\n"
            "init --tokenizer (the prompt is encoded, the continuation decoded, with that model\n"
            "from the store). Temperature 0 picks the most likely token each time (greedy: the\n"
            "same output every run); T > 0 samples from softmax(logits / T) with the stream of\n"
            "seed S. --verbose logs the prompt's and the sampled token ids.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest' (default)\n"
            "  --prompt TEXT           the beginning (at least one byte)\n"
            "  --temperature T         default 0.8; 0 = greedy\n"
            "  --tokens N              tokens to generate (default 200)\n"
            "  --seed S                sampling seed (default 0)\n"
            "  --threads N             CPU threads (default: all cores)\n"
            "  --backend B             cpu, cuda or auto (default)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 done, 1 failed, 2 usage, 65 invalid or corrupt version, 74 store unreachable\n");
}

int cmd_sample(int argc, char **argv)
{
    const char *cmd = "sample", *url;
    int64_t version = -1;
    pipe_sample_options o = {.temperature = 0.8, .tokens = 200};
    store_options so;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--version", CLI_VERSION, &version, 0, 0, NULL},
                            {"--prompt", CLI_STR, &o.prompt, 0, 0, NULL},
                            {"--backend", CLI_STR, &o.backend, 0, 0, NULL},
                            {"--temperature", CLI_DOUBLE, &o.temperature, 0, 100, NULL},
                            {"--tokens", CLI_LONG, &o.tokens, 0, 1000000, NULL},
                            {"--seed", CLI_LONG, &o.seed, 0, 0x7fffffffL, NULL},
                            {"--threads", CLI_INT, &o.threads, 0, 1024, NULL},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!o.prompt || !*o.prompt) return cli_usage_error(cmd, "--prompt TEXT is required (at least one byte)");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    char *text = NULL;
    size_t len = 0;
    int64_t used = -1;
    xffl_status st = pipe_sample(s, version, &o, &text, &len, &used);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    fwrite(o.prompt, 1, strlen(o.prompt), stdout);
    fwrite(text, 1, len, stdout);
    fputc('\n', stdout);
    free(text);
    return 0;
}
