/* xffl export: a version as a llama2.c checkpoint (+ tokenizer) that its `run` reads (the
 * job: pipelines/model.c), or as a Hugging Face directory (pipelines/export_hf.c). */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "pipelines/export_hf.h"
#include "pipelines/model.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl export --store URL --version V --format llama2c OUT.bin [store flags]\n"
            "       xffl export --store URL --version V --format hf DIR [--dtype fp32|bf16] [store flags]\n"
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
            "--format hf writes a directory transformers' LlamaForCausalLM.from_pretrained loads:\n"
            "config.json, model.safetensors (above --shard-size: model-0000i-of-0000n.safetensors\n"
            "and model.safetensors.index.json), tokenizer_config.json, and the federation's\n"
            "tokenizer.model when `init --tokenizer` stored one.\n"
            "\n"
            "  --store URL             s3://bucket/prefix, file:///path or a path\n"
            "  --version V             a version number or 'latest'\n"
            "  --format F              llama2c or hf\n"
            "  --dtype D               hf: fp32 (default) or bf16 (round to nearest even)\n"
            "  --shard-size N          hf: bytes per safetensors file, K/M/G (5G)\n" CLI_STORE_FLAGS_HELP
            "\n"
            "exit codes: 0 written, 1 failed, 2 usage, 65 invalid or corrupt version, or a model\n"
            "llama2.c cannot represent, 74 store unreachable\n");
}

static int export_hf(store *s, int64_t version, const char *dir, const char *dtype, const fmt_hf_export_options *o)
{
    pipe_export_hf_result r;
    xffl_status st = pipe_export_hf(s, version, dir, o, &r);
    store_close(s);
    if (st != XFFL_OK) return cli_report("export", st);
    if (cli_json)
        printf("{\"version\":%lld,\"format\":\"hf\",\"out\":\"%s\",\"dtype\":\"%s\",\"shards\":%d,\"bytes\":%llu,"
               "\"tokenizer\":%s}\n",
               (long long)r.version, dir, dtype, r.files.shards, (unsigned long long)r.files.bytes,
               r.tokenizer ? "true" : "false");
    else
        printf("exported v%06lld to %s (%s, %d safetensors file%s%s)\n", (long long)r.version, dir, dtype,
               r.files.shards, r.files.shards == 1 ? "" : "s", r.tokenizer ? ", tokenizer.model" : "");
    return 0;
}

int cmd_export(int argc, char **argv)
{
    const char *cmd = "export", *url, *fmt = NULL, *out = NULL, *dtype = "fp32";
    uint64_t shard = 0;
    int64_t version = -1;
    int version_given = 0;
    store_options so;
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--version", CLI_VERSION, &version, 0, 0, &version_given},
                            {"--format", CLI_STR, &fmt, 0, 0, NULL},
                            {"--dtype", CLI_STR, &dtype, 0, 0, NULL},
                            {"--shard-size", CLI_SIZE, &shard, 0, 0, NULL},
                            {0}};
    cli_args args = {.v = &out, .max = 1, .what = "OUT.bin"};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, &args);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!version_given) return cli_usage_error(cmd, "--version V is required (a number or 'latest')");
    int hf = fmt && strcmp(fmt, "hf") == 0;
    if (!hf && (!fmt || strcmp(fmt, "llama2c") != 0))
        return cli_usage_error(cmd, "--format llama2c or hf is required, got '%s'", fmt ? fmt : "");
    if (!out) return cli_usage_error(cmd, hf ? "DIR is required" : "OUT.bin is required");
    fmt_hf_export_options o = {.shard_bytes = shard};
    if (hf && pipe_export_hf_dtype(dtype, &o.dtype) != XFFL_OK) return cli_usage_error(cmd, "%s", xffl_errmsg());
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    if (hf) return export_hf(s, version, out, dtype, &o);
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
