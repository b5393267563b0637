/* xffl data pack: text files to byte-level train/val token shards (llm.c format). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cli.h"
#include "common/util.h"
#include "kernels/data.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl data pack FILES... --out DIR [--val-fraction F] [--name NAME] [--shard-tokens N]\n"
            "\n"
            "Tokenizes FILES with the byte-level tokenizer (token = byte, vocabulary 256) into\n"
            "llm.c token shards (256 x int32 header: magic 20240520, version 1, token count;\n"
            "then uint16 tokens): DIR/<NAME>_train_NNNN.bin and DIR/<NAME>_val_NNNN.bin.\n"
            "The last F of every file goes to val, the rest to train, files in the order given.\n"
            "Prints files, tokens and shards per split on stdout.\n"
            "\n"
            "  --out DIR               output directory (created)\n"
            "  --val-fraction F        fraction of each file held out for validation (default 0.1)\n"
            "  --name NAME             shard name prefix (default: data)\n"
            "  --shard-tokens N        tokens per shard, K/M/G suffixes (default 100M)\n"
            "  --json                  result as one JSON object (global flag)\n"
            "\n"
            "exit codes: 0 packed, 1 failed (unreadable file, disk), 2 usage\n");
}

int cmd_data(int argc, char **argv)
{
    const char *cmd = "data pack";
    if (cli_wants_help(argc, argv) || argc < 2) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "pack") != 0) return cli_usage_error("data", "unknown action '%s' (expected: pack)", argv[1]);
    kern_pack_options o = {.name = "data", .val_fraction = 0.1, .shard_tokens = 100000000};
    const char **files = calloc((size_t)argc, sizeof *files);
    if (!files) return cli_report(cmd, xffl_fail(XFFL_ERR_NOMEM, "arguments"));
    int nf = 0, rc = 0;
    for (int i = 2; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--out")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) goto usage;
            o.out_dir = v;
        } else if (!strcmp(argv[i], "--name")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) goto usage;
            o.name = v;
        } else if (!strcmp(argv[i], "--val-fraction")) {
            if (!(v = cli_value(cmd, argc, argv, &i))) goto usage;
            xffl_status st = xffl_parse_double("--val-fraction", v, &o.val_fraction);
            if (st != XFFL_OK) {
                rc = cli_report(cmd, st);
                goto out;
            }
        } else if (!strcmp(argv[i], "--shard-tokens")) {
            uint64_t n = 0;
            if (!(v = cli_value(cmd, argc, argv, &i))) goto usage;
            xffl_status st = xffl_parse_size(v, &n);
            if (st != XFFL_OK) {
                rc = cli_report(cmd, st);
                goto out;
            }
            o.shard_tokens = (int64_t)n;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            rc = cli_usage_error(cmd, "unknown option '%s'", argv[i]);
            goto out;
        } else {
            files[nf++] = argv[i];
        }
    }
    if (!o.out_dir) {
        rc = cli_usage_error(cmd, "--out DIR is required");
        goto out;
    }
    if (nf == 0) {
        rc = cli_usage_error(cmd, "no input files");
        goto out;
    }
    kern_pack_result r;
    xffl_status st = kern_pack(files, nf, &o, &r);
    if (st != XFFL_OK) {
        rc = cli_report(cmd, st);
        goto out;
    }
    if (cli_json)
        printf("{\"files\":%lld,\"train_tokens\":%lld,\"train_shards\":%d,\"val_tokens\":%lld,\"val_shards\":%d,"
               "\"out\":\"%s\",\"name\":\"%s\"}\n",
               (long long)r.files, (long long)r.train_tokens, r.train_shards, (long long)r.val_tokens, r.val_shards,
               o.out_dir, o.name);
    else
        printf("packed %lld files: train %lld tokens in %d shards, val %lld tokens in %d shards (%s/%s_*.bin)\n",
               (long long)r.files, (long long)r.train_tokens, r.train_shards, (long long)r.val_tokens, r.val_shards,
               o.out_dir, o.name);
    goto out;
usage:
    rc = 2;
out:
    free(files);
    return rc;
}
