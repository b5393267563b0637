/* xffl train: one facility's job for one round, or --rounds N of them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/ranks.h"
#include "pipelines/train.h"

static const char *help =
    "usage: xffl train --store URL --facility NAME --data GLOB [--round R] [--state DIR]\n"
    "                  [--rounds N] [--ahead] [--wait S] [--poll S] [--keep-inner-state]\n"
    "                  [--keep-rounds N|all]\n"
    "                  [--backend cpu|cuda] [--threads N]\n"
    "                  [--accumulate K] [--optimizer auto|sharded|replicated]\n"
    "                  [--precision auto|fp32|bf16]\n"
    "                  [--checkpoint-every N] [--recompute] [--ranks N]\n"
    "\n"
    "One facility's batch job: reads LATEST (version v), fetches and verifies it, runs\n"
    "H local AdamW steps on this facility's token shards (H, batch, sequence length\n"
    "and optimizer settings come from federation.h5), and uploads the delta\n"
    "theta_local - theta_v (encoded as the federation says), then its COMMIT, last.\n"
    "A round this facility already has a pending or accepted attempt for is a no-op;\n"
    "a rejected attempt makes this run attempt a<N+1>.\n"
    "\n"
    "  --store URL          s3://bucket/prefix, file:///path or a plain path\n"
    "  --facility NAME      this facility (one of the federation's)\n"
    "  --data GLOB          token shards (llm.c format, from 'xffl data pack')\n"
    "  --round R            the round a scheduled job is for (default LATEST+1): exit 0\n"
    "                       if version R exists, 75 if version R-1 does not yet\n"
    "  --state DIR          this facility's own state: data cursor, inner optimizer\n"
    "                       state, error-feedback residual, the version it trained from\n"
    "                       and the delta it sent, so the next version comes as a replay\n"
    "                       of its aggregation or an update, not in full (never in the\n"
    "                       store)\n"
    "  --rounds N           rounds R..R+N-1 in this one process, each as its own job\n"
    "                       would run it (the same bits), waiting for version R before\n"
    "                       round R+1; the model, and the AdamW state and residual a\n"
    "                       round wrote to --state DIR, stay in memory for the next\n"
    "                       (default 1)\n"
    "  --keep-inner-state   keep AdamW state across rounds in --state DIR\n"
    "  --keep-rounds N|all  keep in --state DIR the inputs of the N latest rounds\n"
    "                       (DIR/r<R>/: AdamW state and residual, the model's size two\n"
    "                       or three times, for reproduce --train); older rounds' are\n"
    "                       removed after each COMMIT (default all)\n"
    "  --ahead              when this facility's delta for round R is in and version R is\n"
    "                       not yet: wait for every facility's delta, replay version R\n"
    "                       from them (needs --state DIR) and train round R+1 while the\n"
    "                       aggregation job publishes R; the COMMIT waits for version R\n"
    "                       and names it, or the round is trained again from it when it\n"
    "                       differs\n"
    "  --wait S             how long --ahead waits for those deltas, then for version R,\n"
    "                       and --rounds for each next version (default 600; then exit 75)\n"
    "  --poll S             longest pause between looks at the store while waiting\n"
    "                       (default 1; the first pauses are shorter)\n"
    "  --backend B          cpu (default) or cuda\n"
    "  --threads N          cpu threads (default: all cores)\n"
    "  --precision P        cpu GEMMs: auto (default: bf16 where the CPU has bf16 units,\n"
    "                       AVX-512 BF16 or AMX, else fp32), fp32, or bf16 (bf16 operands,\n"
    "                       fp32 accumulation, weights and optimizer); recorded in the COMMIT\n"
    "  --accumulate K       split each rank's share of the batch into K micro-batches\n"
    "                       (ranks x K micro-batches give the same bits for any split)\n"
    "  --optimizer O        auto (the backend's own AdamW on one rank without\n"
    "                       accumulation, else sharded), sharded (ZeRO-2: each rank\n"
    "                       keeps AdamW state for its shard) or replicated: same bits\n"
    "  --recompute          keep one layer's activations at a time, recompute the rest\n"
    "                       in the backward (cpu; same bits, one more forward)\n"
    "  --checkpoint-every N save the round's progress to --state DIR every N steps; a\n"
    "                       re-run resumes from there with the same result\n"
    "  --ranks N            start N ranks on this node through mpirun (Open MPI): the\n"
    "                       same as `mpirun -np N xffl train ...`\n"
    "  --dry-run            one rank's memory plan, and whether it fits; trains nothing\n"
    "                       (its flags: xffl train --dry-run --help)\n" CLI_TRUST_FLAGS_HELP CLI_STORE_FLAGS_HELP
    "\n"
    "stdout: 'round R a<N> <COMMIT key> tokens T loss FIRST -> LAST' (--json: an object),\n"
    "one line a round.\n"
    "exit codes: 0 committed or nothing to do, 1 failed, 2 usage (unknown facility\n"
    "too), 65 bad data or checkpoint, 74 store unreachable, 75 base version not there.\n";


/* rank 0, after each round */
static void print_round(void *ctx, const pipe_train_result *r)
{
    (void)ctx;
    if (r->skipped) {
        xffl_log(XFFL_LOG_INFO, "nothing to do: %s", r->why);
        if (!cli_json) printf("round %lld skipped: %s\n", (long long)r->round, r->why);
        else {
            printf("{\"round\": %lld, \"skipped\": true, \"why\": ", (long long)r->round);
            cli_json_str(r->why);
            printf("}\n");
        }
    } else {
        xffl_log(XFFL_LOG_INFO, "committed %s (%llu bytes) in %.1fs", r->commit_key, (unsigned long long)r->bytes,
                 r->seconds);
        if (!cli_json)
            printf("round %lld a%d %s tokens %lld loss %.4f -> %.4f download %s %llu bytes\n", (long long)r->round,
                   r->attempt, r->commit_key, (long long)r->tokens, r->loss_first, r->loss_last,
                   pipe_download_route_name(r->download_route), (unsigned long long)r->download_bytes);
        else {
            printf("{\"round\": %lld, \"skipped\": false, \"attempt\": %d, \"commit\": ", (long long)r->round,
                   r->attempt);
            cli_json_str(r->commit_key);
            printf(", \"tokens\": %lld, \"steps\": %lld, \"loss_first\": %.6f, \"loss_last\": %.6f, "
                   "\"loss_mean\": %.6f, \"bytes\": %llu, \"download\": \"%s\", \"download_bytes\": %llu, "
                   "\"train_seconds\": %.3f, \"step_seconds_median\": %.4f, \"seconds\": %.3f, \"cursor_start\": ",
                   (long long)r->tokens, (long long)r->steps, r->loss_first, r->loss_last, r->loss_mean,
                   (unsigned long long)r->bytes, pipe_download_route_name(r->download_route),
                   (unsigned long long)r->download_bytes, r->train_seconds, r->step_seconds_median, r->seconds);
            cli_json_str(r->cursor_start);
            printf(", \"cursor_end\": ");
            cli_json_str(r->cursor_end);
            printf("}\n");
        }
    }
    fflush(stdout); /* each round's line as it ends, for whoever follows a --rounds job */
}

int cmd_train(int argc, char **argv)
{
    const char *cmd = "train";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--dry-run")) return cli_train_dry_run(argc, argv);
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    pipe_train_options o;
    pipe_train_options_default(&o);
    pipe_trust_options trust = {0};
    o.trust = &trust;
    const char *url, *optimizer = "auto", *precision = "auto", *keep_rounds = "all";
    int ranks = 1, rounds = 1;
    const cli_opt opts[] = {{"--facility", CLI_STR, &o.facility, 0, 0, NULL},
                            {"--data", CLI_STR, &o.data_glob, 0, 0, NULL},
                            {"--state", CLI_STR, &o.state_dir, 0, 0, NULL},
                            {"--backend", CLI_STR, &o.backend, 0, 0, NULL},
                            {"--round", CLI_I64, &o.round, 1, 999999, NULL},
                            {"--threads", CLI_INT, &o.threads, 0, 1024, NULL},
                            {"--keep-inner-state", CLI_FLAG, &o.keep_inner_state, 0, 0, NULL},
                            {"--accumulate", CLI_INT, &o.accumulate, 1, 4096, NULL},
                            {"--optimizer", CLI_STR, &optimizer, 0, 0, NULL},
                            {"--precision", CLI_STR, &precision, 0, 0, NULL},
                            {"--checkpoint-every", CLI_INT, &o.checkpoint_every, 0, 1 << 30, NULL},
                            {"--recompute", CLI_FLAG, &o.recompute, 0, 0, NULL},
                            {"--ranks", CLI_INT, &ranks, 1, 4096, NULL},
                            {"--ahead", CLI_FLAG, &o.ahead, 0, 0, NULL},
                            {"--wait", CLI_DOUBLE, &o.wait, 1, 86400, NULL},
                            {"--poll", CLI_SECONDS, &o.poll, 0, 0, NULL},
                            {"--rounds", CLI_INT, &rounds, 1, 1000000, NULL},
                            {"--keep-rounds", CLI_STR, &keep_rounds, 1, 0, NULL},
                            CLI_TRUST_OPTS(&trust),
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (o.backend && strcmp(o.backend, "cpu") && strcmp(o.backend, "cuda") && strcmp(o.backend, "auto"))
        return cli_usage_error(cmd, "--backend must be cpu, cuda or auto, not '%s'", o.backend);
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (!o.facility) return cli_usage_error(cmd, "--facility NAME is required");
    if (!o.data_glob) return cli_usage_error(cmd, "--data GLOB is required");
    if (o.ahead && !o.state_dir) return cli_usage_error(cmd, "--ahead needs --state DIR (the version it trained from)");
    if (strcmp(keep_rounds, "all")) {
        long k;
        if (xffl_parse_long("--keep-rounds", keep_rounds, 0, 1000000, &k) != XFFL_OK)
            return cli_usage_error(cmd, "--keep-rounds must be a number of rounds (0 or more) or all, not '%s'",
                                   keep_rounds);
        if (!o.state_dir) return cli_usage_error(cmd, "--keep-rounds needs --state DIR (where the rounds' inputs are)");
        o.keep_rounds = (int)k;
    }
    xffl_status st = pipe_opt_mode_parse(optimizer, &o.optimizer);
    if (st == XFFL_OK) st = kern_precision_parse(precision, &o.precision);
    if (st != XFFL_OK) return cli_report(cmd, st);
    /* Returns in each rank (or failing): the launching process becomes mpirun, so this
     * comes after the usage checks and before anything opens MPI (comm_open). */
    if ((st = pipe_ranks_launch(ranks)) != XFFL_OK) return cli_report(cmd, st);
    const char *halt = getenv("XFFL_TEST_HALT_AFTER"); /* tests: a job killed right after a checkpoint */
    o.halt_after = halt ? atoi(halt) : 0;
    const char *stop = getenv("XFFL_TEST_STOP_AT"); /* tests: a rank to kill -9 in the middle of a step */
    o.stop_at = stop ? atoi(stop) : 0;
    o.kill_after_commit = getenv("XFFL_TEST_KILL_AFTER_COMMIT") != NULL; /* tests: killed before the state moves on */
    if ((st = comm_open("auto", o.state_dir, &o.comm)) != XFFL_OK) return cli_report(cmd, st);
    /* several tasks without a transport between them would each train and commit */
    const char *ntasks = getenv("SLURM_NTASKS");
    if (comm_size(o.comm) == 1 && ntasks && atoi(ntasks) > 1) {
        comm_close(o.comm);
        return cli_usage_error(cmd, "SLURM_NTASKS=%s but this process is not one of several MPI ranks: start the "
                                    "tasks through MPI (srun --mpi, mpirun) or submit one task", ntasks);
    }
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) {
        comm_close(o.comm);
        return rc;
    }
    st = pipe_train_rounds(s, &o, rounds, print_round, NULL);
    store_close(s);
    comm_close(o.comm);
    return st != XFFL_OK ? cli_report(cmd, st) : 0;
}
