/* xffl export: a version as a llama2.c checkpoint (+ tokenizer) that its `run` reads (the
 * job: pipelines/model.c). */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "pipelines/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl export --store URL --version V --format llama2c OUT.bin [store flags]\n"
            "\n"
            "Writes version V as a llama2.c legacy checkpoint (karpathy/llama2.c: 7 x int32 header\n"
            "with a negative vocab_size since our classifier is untied, then the float32 tensors in\n"
            "its order, RoPE tables and the classifier) and, for the byte-level vocabulary, its\n"
            "tokenizer file OUT.tokenizer.bin (one piece per byte). Then:\n"
            "  ./run OUT.bin -z OUT.tokenizer.bin -i 'Once upon'\n"
            "llama2.c's encoder prepends token 1 and a space and maps non-ASCII bytes to id+3, so\n"
            "prompts there must be ASCII. run fixes RoPE theta 10000 and norm eps 1e-5: other\n"
            "models are refused (exit 65).\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest'\n"
            "  --format llama2c        the only format\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 written, 1 failed, 2 usage, 65 invalid or corrupt version, or a model\n"
            "llama2.c cannot represent, 74 store unreachable\n");
}

int cmd_export(int argc, char **argv)
{
    const char *cmd = "export", *url, *fmt = NULL, *out = NULL;
    int64_t version = -1;
    int version_given = 0;
    store_options so;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--version", CLI_VERSION, &version, 0, 0, &version_given},
                            {"--format", CLI_STR, &fmt, 0, 0, NULL},
                            {0}};
    cli_args args = {.v = &out, .max = 1, .what = "OUT.bin"};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, &args);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!version_given) return cli_usage_error(cmd, "--version V is required (a number or 'latest')");
    if (!fmt || strcmp(fmt, "llama2c") != 0)
        return cli_usage_error(cmd, "--format llama2c is required (the only format), got '%s'", fmt ? fmt : "");
    if (!out) return cli_usage_error(cmd, "OUT.bin is required");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_export_result r;
    xffl_status st = pipe_export_llama2c(s, version, out, &r);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (cli_json)
        printf("{\"version\":%lld,\"format\":\"llama2c\",\"out\":\"%s\",\"tokenizer\":\"%s\"}\n", (long long)r.version,
               out, r.tokenizer);
    else
        printf("exported v%06lld to %s%s%s\n", (long long)r.version, out, r.tokenizer[0] ? " and " : "", r.tokenizer);
    return 0;
}
