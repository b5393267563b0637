/* xffl sample: generate text from a version (byte-level vocabulary). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/cli_model.h"
#include "common/util.h"
#include "kernels/kern.h"
#include "kernels/train.h"
#include "text/tokenizer.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl sample --store URL [--version V] --prompt TEXT [--temperature T] [--tokens N]\n"
            "                   [--seed S] [--threads N] [--backend cpu|cuda] [store flags]\n"
            "\n"
            "Continues TEXT with N tokens (bytes) from version V and prints prompt + continuation\n"
            "on stdout. Temperature 0 picks the most likely byte each time (greedy: the same\n"
            "output every run); T > 0 samples from softmax(logits / T) with the stream of seed S.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest' (default)\n"
            "  --prompt TEXT           the beginning (at least one byte)\n"
            "  --temperature T         default 0.8; 0 = greedy\n"
            "  --tokens N              bytes to generate (default 200)\n"
            "  --seed S                sampling seed (default 0)\n"
            "  --threads N             CPU threads (default: all cores)\n"
            "  --backend B             cpu, cuda or auto (default)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 done, 1 failed, 2 usage, 65 invalid or corrupt version, 74 store unreachable\n");
}

int cmd_sample(int argc, char **argv)
{
    const char *cmd = "sample", *url = NULL, *ver = "latest", *prompt = NULL, *backend = NULL;
    double temp = 0.8;
    long tokens = 200, seed = 0, threads = 0;
    store_options so;
    store_options_default(&so);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--version", CLI_STR, &ver, 0, 0, NULL},
                            {"--prompt", CLI_STR, &prompt, 0, 0, NULL},
                            {"--backend", CLI_STR, &backend, 0, 0, NULL},
                            {"--temperature", CLI_DOUBLE, &temp, 0, 100, NULL},
                            {"--tokens", CLI_LONG, &tokens, 0, 1000000, NULL},
                            {"--seed", CLI_LONG, &seed, 0, 0x7fffffffL, NULL},
                            {"--threads", CLI_LONG, &threads, 0, 1024, NULL},
                            {0}};
    int rc = cli_parse(cmd, argc, argv, opts, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!prompt || !*prompt) return cli_usage_error(cmd, "--prompt TEXT is required (at least one byte)");
    ckpt_param_table *t = NULL;
    float *p = NULL;
    kern_model *m = NULL;
    pipe_version_ref ref = {.version = -1};
    size_t np = strlen(prompt);
    int32_t *ids = malloc(np * sizeof *ids), *out = malloc(((size_t)tokens + 1) * sizeof *out);
    char *text = malloc((size_t)tokens + 1);
    xffl_status st = ids && out && text ? XFFL_OK : xffl_fail(XFFL_ERR_NOMEM, "sample buffers");
    if (st == XFFL_OK) st = cli_model_load(url, &so, ver, &t, &p, &ref);
    if (st == XFFL_OK && t->cfg.vocab_size != 256)
        st = xffl_fail(XFFL_ERR_UNSUPPORTED, "sample: vocabulary %d is not the byte-level 256 this command decodes",
                       t->cfg.vocab_size);
    if (st == XFFL_OK) {
        kern_options ko = {.backend = backend, .threads = (int)threads, .batch = 1, .seq_len = t->cfg.max_seq_len};
        st = kern_model_create(&t->cfg, &ko, &m);
    }
    if (st == XFFL_OK) st = kern_set_params(m, p);
    if (st == XFFL_OK) {
        text_byte_encode(prompt, np, ids);
        kern_sample_options so2 = {.temperature = (float)temp, .seed = (uint64_t)seed, .tokens = (int)tokens};
        xffl_log(XFFL_LOG_INFO, "v%06lld, %zu prompt bytes, %ld to generate (temperature %g)", (long long)ref.version, np,
                 tokens, temp);
        st = kern_sample(m, t->cfg.max_seq_len, ids, (int)np, &so2, out);
    }
    if (st == XFFL_OK) {
        text_byte_decode(out, (size_t)tokens, text);
        fwrite(prompt, 1, np, stdout);
        fwrite(text, 1, (size_t)tokens, stdout);
        fputc('\n', stdout);
    }
    kern_model_free(m);
    free(p), free(ids), free(out), free(text);
    ckpt_param_table_free(t);
    return cli_report(cmd, st);
}
