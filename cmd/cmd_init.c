/* xffl init: create a federation (federation.h5, version 0, LATEST). */
#include <stdio.h>
#include <string.h>

#include "cmd/cli.h"
#include "libckpt/h5part.h"
#include "libckpt/zstd_filter.h"
#include "pipelines/init.h"

static void help(void)
{
    char algos[256], encodings[256], numbers[2][1024] = {"", ""};
    pipe_algo_list(algos, sizeof algos, " (default)");
    ckpt_codec_list(encodings, sizeof encodings, " (default)");
    for (int k = 0; k < PIPE_INIT_NDBL; k++) {
        const pipe_init_number *n = &pipe_init_numbers[k];
        char *b = numbers[strcmp(n->section, "algorithm") != 0];
        char fx[40];
        snprintf(fx, sizeof fx, "%s X", n->flag);
        snprintf(b + strlen(b), sizeof numbers[0] - strlen(b), "  %-22s  %s\n", fx, n->help);
    }
    printf("usage: xffl init --store URL (--model PRESET | --from HF_DIR) [options]\n"
           "\n"
           "Creates a federation in an empty store: federation.h5 (every setting that\n"
           "changes a round's result; train and aggregate read them from there), version 0\n"
           "(the initial weights from --seed or --from, split into parts) and LATEST. Refuses a store\n"
           "that already holds federation.h5. Same flags give byte-identical stores.\n"
           "\n"
           "model and federation:\n"
           "  --store URL             s3://bucket/prefix, file:///path or a plain path\n"
           "  --model PRESET          %s (optional with a Hugging Face --from:\n"
           "                          its config.json is the model, a preset when it equals one)\n"
           "  --vocab N               vocabulary size (default: 256 byte-level for tiny/small/base)\n"
           "  --facilities a,b        facility names (default: local)\n"
           "  --algo A                %s\n"
           "  --local-steps H         optimizer steps per facility per round (100)\n"
           "  --local-steps-schedule S  rounds with other local steps first: SxR[,SxR...] is R\n"
           "                          rounds of S steps each from round 1, then H (e.g. 10x10:\n"
           "                          10 rounds of 10 steps; none by default)\n"
           "  --quorum K              deltas needed per round (default: all facilities)\n"
           "  --seed S                initialisation seed (0)\n"
           "  --from URL|FILE.bin|DIR version 0's weights: a version of another store (verified),\n"
           "                          a llama2.c checkpoint or a Hugging Face LLaMA directory\n"
           "                          (safetensors fp32/fp16/bf16, streamed); INDEX names it (init_from)\n"
           "  --from-version V        which version of the --from store (latest)\n"
           "  --tokenizer FILE        a SentencePiece tokenizer.model (LLaMA's) instead of bytes: its\n"
           "                          vocabulary and digest go into federation.h5, the file into the\n"
           "                          store; shards packed with another are refused\n"
           "  --part-size N           uncompressed bytes per version part, K/M/G (1G)\n"
           "  --level L               zstd level of every part, not 0 (%d: entropy coding only,\n"
           "                          as small as level 1 for float weights at twice the speed)\n"
           "  --dry-run               print the layout, parameter count and part plan; write nothing\n"
           "algorithm (defaults depend on --algo):\n"
           "  --unweighted            plain mean of deltas instead of token-weighted (the XFFL paper)\n"
           "  --no-nesterov           diloco: heavy-ball instead of Nesterov momentum\n"
           "%s"
           "facility training:\n"
           "  --warmup N              warm-up steps (10)\n"
           "  --total-rounds R        rounds the run is planned for: the learning-rate schedule\n"
           "                          (warm-up, then cosine to --min-lr) spans all R*H steps of a\n"
           "                          facility (the steps of rounds 1..R with a schedule)\n"
           "                          instead of restarting every round (0: restart, default)\n"
           "%s"
           "  --batch B --seq-len T   sequences per step, tokens per sequence (4, min(256, max_seq_len))\n"
           "  --encoding E            delta encoding: %s\n"
           "  --encoding-flush N      topk: the last N of --total-rounds keep every entry, sending\n"
           "                          what error feedback held back (0)\n"
           "  --keep-inner-state      keep AdamW state across rounds in the facility's --state DIR\n"
           "  --data-order O          files: each shard's sequences in file order (default);\n"
           "                          strided: a permutation from --seed, new every pass, so a\n"
           "                          round's steps read all over the corpus, not one file\n"
           "keys (docs/design.md \"Trust\"):\n"
           "  --keys DIR              key pairs generated (or reused) for the aggregator and each\n"
           "                          facility not given below ($XDG_CONFIG_HOME/xffl/keys)\n"
           "  --facility-key N=FILE   facility N's public key (from xffl keygen), repeatable\n"
           "  --aggregator-key FILE   the aggregator's public key\n"
           "  --key FILE              the aggregator's private key, signs v0 (DIR/aggregator.key)\n"
           "  --insecure              an unsigned federation: no keys, anyone who can write to\n"
           "                          the store can forge deltas and versions\n"
           "store I/O:\n" CLI_STORE_FLAGS_HELP
           "  --threads N             compression threads (default: all cores)\n"
           "\n"
           "Prints the version it wrote on stdout (--json: one object).\n"
           "A --tokenizer that is not a SentencePiece BPE model, or not of the model's\n"
           "vocabulary, is exit 65 (the message names the file and the field).\n"
           "exit codes: 0 done, 1 failed (store already a federation, I/O, --from missing),\n"
           "2 usage, 65 --from's model is another, fails a digest, is not a whole llama2.c file\n"
           "or is a Hugging Face directory whose files disagree (the message names file and field),\n"
           "74 store unreachable.\n",
           ckpt_model_preset_names(), algos, CKPT_ZSTD_DEFAULT_LEVEL, numbers[0], numbers[1], encodings);
}

int cmd_init(int argc, char **argv)
{
    const char *C = "init";
    if (cli_wants_help(argc, argv)) {
        help();
        return 0;
    }
    store_options sopt;
    store_options_default(&sopt);
    const char *url = NULL;
    pipe_trust_options trust = {0};
    const char *fkeys[PIPE_MAX_FACILITIES];
    pipe_init_settings set = {.warmup = -1, .total_rounds = -1, .from_options = &sopt, .trust = &trust,
                              .facility_keys = fkeys};
    cli_opt opts[32 + PIPE_INIT_NDBL] = {
        {"--keys", CLI_STR, &trust.keys_dir, 1, 0, NULL},
        {"--key", CLI_STR, &trust.key_file, 1, 0, NULL},
        {"--facility-key", CLI_LIST, fkeys, 0, PIPE_MAX_FACILITIES, &set.n_facility_keys},
        {"--aggregator-key", CLI_STR, &set.aggregator_key, 1, 0, NULL},
        {"--insecure", CLI_FLAG, &set.insecure, 0, 0, NULL},
        {"--store", CLI_STR, &url, 0, 0, NULL},
        {"--model", CLI_STR, &set.preset, 0, 0, NULL},
        {"--facilities", CLI_STR, &set.facilities, 0, 0, NULL},
        {"--algo", CLI_STR, &set.algo, 0, 0, NULL},
        {"--encoding", CLI_STR, &set.encoding, 0, 0, NULL},
        {"--from", CLI_STR, &set.from, 0, 0, NULL},
        {"--from-version", CLI_STR, &set.from_version, 0, 0, NULL},
        {"--tokenizer", CLI_STR, &set.tokenizer, 0, 0, NULL},
        {"--vocab", CLI_INT, &set.vocab, 1, 65536, NULL},
        {"--local-steps", CLI_INT, &set.local_steps, 1, 100000000, NULL},
        {"--quorum", CLI_INT, &set.quorum, 1, PIPE_MAX_FACILITIES, NULL},
        {"--seed", CLI_I64, &set.seed, 0, INT64_MAX, NULL},
        {"--warmup", CLI_INT, &set.warmup, 0, 100000000, NULL},
        {"--total-rounds", CLI_INT, &set.total_rounds, 0, 100000000, NULL},
        {"--encoding-flush", CLI_INT, &set.encoding_flush, 0, 100000000, NULL},
        {"--batch", CLI_INT, &set.batch, 1, 1000000, NULL},
        {"--seq-len", CLI_INT, &set.seq_len, 1, 1000000, NULL},
        {"--threads", CLI_INT, &set.threads, 1, 1024, NULL},
        {"--level", CLI_INT, &set.level, CKPT_ZSTD_MIN_LEVEL, CKPT_ZSTD_MAX_LEVEL, NULL},
        {"--part-size", CLI_SIZE, &set.part_size, 0, 0, NULL},
        {"--dry-run", CLI_FLAG, &set.dry_run, 0, 0, NULL},
        {"--unweighted", CLI_FLAG, &set.unweighted, 0, 0, NULL},
        {"--no-nesterov", CLI_FLAG, &set.no_nesterov, 0, 0, NULL},
        {"--keep-inner-state", CLI_FLAG, &set.keep_inner_state, 0, 0, NULL},
        {"--data-order", CLI_STR, &set.data_order, 0, 0, NULL},
        {"--local-steps-schedule", CLI_STR, &set.local_steps_schedule, 0, 0, NULL},
        {0}};
    int fixed = 0;
    while (opts[fixed].name) fixed++;
    for (int k = 0; k < PIPE_INIT_NDBL; k++)
        opts[fixed + k] = (cli_opt){pipe_init_numbers[k].flag, CLI_DOUBLE, &set.dbl[k], 0, 0, &set.dbl_set[k]};
    int rc = cli_parse(C, argc, argv, opts, &sopt, NULL);
    if (rc) return rc;
    if (!set.preset && !set.from) return cli_usage_error(C, "--model PRESET is required (%s)", ckpt_model_preset_names());
    if (!url && !set.dry_run) return cli_usage_error(C, "--store URL is required (or --dry-run)");
    if (set.from_version && !set.from) return cli_usage_error(C, "--from-version needs --from URL");

    store *s = NULL;
    pipe_init_result res = {0};
    xffl_status st = set.dry_run ? XFFL_OK : store_open(url, &sopt, &s);
    if (st == XFFL_OK) st = pipe_init(s, &set, &res);
    if (st != XFFL_OK && res.bad_settings) {
        fprintf(stderr, "xffl init: %s\n", xffl_errmsg());
        rc = 2;
    } else if (st == XFFL_OK && set.dry_run) {
        cli_print_init_plan(&res);
    } else if (st == XFFL_OK) {
        cli_print_init_result(store_url(s), &res);
    }
    pipe_init_result_free(&res);
    store_close(s);
    return rc ? rc : cli_report(C, st);
}
