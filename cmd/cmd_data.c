/* xffl data pack: text files to train/val token shards (llm.c format), byte-level or
 * with a SentencePiece tokenizer.model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/util.h"
#include "text/pack.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl data pack FILES... --out DIR [--val-fraction F] [--name NAME] [--shard-tokens N]\n"
            "                      [--tokenizer MODEL [--bos] [--eos]]\n"
            "\n"
            "Tokenizes FILES with the byte-level tokenizer (token = byte, vocabulary 256), or\n"
            "with a SentencePiece BPE tokenizer.model (LLaMA's; each file one text), into\n"
            "llm.c token shards (256 x int32 header: magic 20240520, version 1, token count;\n"
            "then uint16 tokens): DIR/<NAME>_train_NNNN.bin and DIR/<NAME>_val_NNNN.bin.\n"
            "The last F of every file goes to val, the rest to train, files in the order given.\n"
            "With --tokenizer, DIR/<NAME>_tokenizer.sha256 records the model (sha256sum format).\n"
            "Prints files, tokens and shards per split on stdout.\n"
            "\n"
            "  --out DIR               output directory (created)\n"
            "  --val-fraction F        fraction of each file held out for validation (default 0.1)\n"
            "  --name NAME             shard name prefix (default: data)\n"
            "  --shard-tokens N        tokens per shard, K/M/G suffixes (default 100M)\n"
            "  --tokenizer MODEL       a SentencePiece tokenizer.model (BPE, identity normalizer)\n"
            "  --bos, --eos            put the model's <s> before / </s> after each file\n"
            "  --json                  result as one JSON object (global flag)\n"
            "\n"
            "exit codes: 0 packed, 1 failed (unreadable file, disk), 2 usage, 65 bad tokenizer.model\n");
}

int cmd_data(int argc, char **argv)
{
    const char *cmd = "data pack";
    if (cli_wants_help(argc, argv) || argc < 2) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "pack") != 0) return cli_usage_error("data", "unknown action '%s' (expected: pack)", argv[1]);
    text_pack_options o = {.name = "data", .val_fraction = 0.1, .shard_tokens = 100000000};
    const char **files = calloc((size_t)argc, sizeof *files);
    if (!files) return cli_report(cmd, xffl_fail(XFFL_ERR_NOMEM, "arguments"));
    uint64_t shard_tokens = (uint64_t)o.shard_tokens;
    const cli_opt opts[] = {{"--out", CLI_STR, &o.out_dir, 0, 0, NULL},
                            {"--name", CLI_STR, &o.name, 0, 0, NULL},
                            {"--val-fraction", CLI_DOUBLE, &o.val_fraction, 0, 0, NULL},
                            {"--shard-tokens", CLI_SIZE, &shard_tokens, 0, 0, NULL},
                            {"--tokenizer", CLI_STR, &o.tokenizer, 1, 0, NULL},
                            {"--bos", CLI_FLAG, &o.bos, 0, 0, NULL},
                            {"--eos", CLI_FLAG, &o.eos, 0, 0, NULL},
                            {0}};
    cli_args args = {.v = files, .max = argc, .what = "FILE"};
    int rc = cli_parse(cmd, argc - 1, argv + 1, opts, NULL, &args);
    if (rc) goto out;
    int nf = args.n;
    o.shard_tokens = (int64_t)shard_tokens;
    if (!o.out_dir) {
        rc = cli_usage_error(cmd, "--out DIR is required");
        goto out;
    }
    if (nf == 0) {
        rc = cli_usage_error(cmd, "no input files");
        goto out;
    }
    text_pack_result r;
    xffl_status st = text_pack(files, nf, &o, &r);
    if (st != XFFL_OK) {
        rc = cli_report(cmd, st);
        goto out;
    }
    if (cli_json) {
        printf("{\"files\":%lld,\"train_tokens\":%lld,\"train_shards\":%d,\"val_tokens\":%lld,\"val_shards\":%d,"
               "\"out\":\"%s\",\"name\":\"%s\"",
               (long long)r.files, (long long)r.train_tokens, r.train_shards, (long long)r.val_tokens, r.val_shards,
               o.out_dir, o.name);
        if (o.tokenizer) printf(",\"vocab\":%d,\"tokenizer_sha256\":\"%s\"", r.vocab, r.tokenizer_sha256);
        printf("}\n");
    } else {
        printf("packed %lld files: train %lld tokens in %d shards, val %lld tokens in %d shards (%s/%s_*.bin)\n",
               (long long)r.files, (long long)r.train_tokens, r.train_shards, (long long)r.val_tokens, r.val_shards,
               o.out_dir, o.name);
        if (o.tokenizer) printf("tokenizer %s: vocabulary %d, sha256 %s\n", o.tokenizer, r.vocab, r.tokenizer_sha256);
    }
out:
    free(files);
    return rc;
}
