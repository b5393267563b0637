/* xffl export: a version as a llama2.c checkpoint (+ tokenizer) that its `run` reads, or
 * as a Hugging Face directory (pipelines/export_hf.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "cmd/cli_model.h"
#include "formats/llama2c.h"
#include "pipelines/export_hf.h"

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

static int export_hf(const char *url, const store_options *so, const char *ver, const char *dtype, uint64_t shard,
                     const char *dir)
{
    fmt_hf_export_options o = {.shard_bytes = shard};
    if (!dir) return cli_usage_error("export", "DIR is required");
    if (pipe_export_hf_dtype(dtype, &o.dtype) != XFFL_OK) return cli_usage_error("export", "%s", xffl_errmsg());
    ckpt_param_table *t = NULL;
    float *p = NULL;
    store *s = NULL;
    pipe_version_ref ref = {.version = -1};
    pipe_export_hf_result r;
    xffl_status st = cli_model_load(url, so, ver, &t, &p, &ref);
    if (st == XFFL_OK) st = store_open(url, so, &s);
    if (st == XFFL_OK) st = pipe_export_hf(s, t, p, dir, &o, &r);
    if (st == XFFL_OK && cli_json)
        printf("{\"version\":%lld,\"format\":\"hf\",\"out\":\"%s\",\"dtype\":\"%s\",\"shards\":%d,\"bytes\":%llu,"
               "\"tokenizer\":%s}\n",
               (long long)ref.version, dir, dtype, r.files.shards, (unsigned long long)r.files.bytes,
               r.tokenizer ? "true" : "false");
    else if (st == XFFL_OK)
        printf("exported v%06lld to %s (%s, %d safetensors file%s%s)\n", (long long)ref.version, dir, dtype,
               r.files.shards, r.files.shards == 1 ? "" : "s", r.tokenizer ? ", tokenizer.model" : "");
    store_close(s);
    free(p);
    ckpt_param_table_free(t);
    return cli_report("export", st);
}

int cmd_export(int argc, char **argv)
{
    const char *cmd = "export", *url = NULL, *ver = NULL, *fmt = NULL, *out = NULL, *dtype = "fp32";
    uint64_t shard = 0;
    store_options so;
    store_options_default(&so);
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return 0;
    }
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--version", CLI_STR, &ver, 0, 0, NULL},
                            {"--format", CLI_STR, &fmt, 0, 0, NULL},
                            {"--dtype", CLI_STR, &dtype, 0, 0, NULL},
                            {"--shard-size", CLI_SIZE, &shard, 0, 0, NULL},
                            {0}};
    cli_args args = {.v = &out, .max = 1, .what = "OUT.bin"};
    int rc = cli_parse(cmd, argc, argv, opts, &so, &args);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!ver) return cli_usage_error(cmd, "--version V is required (a number or 'latest')");
    if (fmt && strcmp(fmt, "hf") == 0) return export_hf(url, &so, ver, dtype, shard, out);
    if (!fmt || strcmp(fmt, "llama2c") != 0)
        return cli_usage_error(cmd, "--format llama2c or hf is required, got '%s'", fmt ? fmt : "");
    if (!out) return cli_usage_error(cmd, "OUT.bin is required");
    ckpt_param_table *t = NULL;
    float *p = NULL;
    pipe_version_ref ref = {.version = -1};
    xffl_status st = cli_model_load(url, &so, ver, &t, &p, &ref);
    if (st == XFFL_OK) st = kern_llama2c_check(&t->cfg);
    if (st == XFFL_OK) st = kern_export_llama2c(t, p, out);
    char tok[4200] = "";
    if (st == XFFL_OK && t->cfg.vocab_size == 256) {
        size_t n = strlen(out);
        if (n > 4 && strcmp(out + n - 4, ".bin") == 0)
            snprintf(tok, sizeof tok, "%.*s.tokenizer.bin", (int)(n - 4), out);
        else
            snprintf(tok, sizeof tok, "%s.tokenizer.bin", out);
        st = kern_export_llama2c_tokenizer(&t->cfg, tok);
    } else if (st == XFFL_OK) {
        xffl_log(XFFL_LOG_WARN, "vocabulary %d is not byte-level: no tokenizer file written", t->cfg.vocab_size);
    }
    if (st == XFFL_OK) {
        if (cli_json)
            printf("{\"version\":%lld,\"format\":\"llama2c\",\"out\":\"%s\",\"tokenizer\":\"%s\"}\n", (long long)ref.version, out,
                   tok);
        else
            printf("exported v%06lld to %s%s%s\n", (long long)ref.version, out, tok[0] ? " and " : "", tok);
    }
    free(p);
    ckpt_param_table_free(t);
    return cli_report(cmd, st);
}
