/* xffl simulate: a whole federation on one machine, every job its own process (the job
 * itself: pipelines/simulate.c). */
#include <stdio.h>
#include "cmd/cli.h"
#include "pipelines/simulate.h"

static const char *help =
    "usage: xffl simulate --store URL --facilities a,b|N --rounds R --data PATTERN\n"
    "                     [--state PATTERN] [--threads N] [--deadline SECS] [-- INIT-FLAGS...]\n"
    "\n"
    "Runs a whole federation locally: 'xffl init' (with INIT-FLAGS, when the store has\n"
    "no federation yet), then for each round up to R every facility's 'xffl train' as\n"
    "its own concurrent process, then 'xffl aggregate'. Rounds already done are\n"
    "skipped, so running it again resumes. In PATTERN, {facility} is replaced by the\n"
    "facility's name.\n"
    "\n"
    "  --store URL        s3://bucket/prefix, file:///path or a plain path\n"
    "  --facilities a,b   facility names, or N for f1..fN (passed to init)\n"
    "  --rounds R         run until version R exists\n"
    "  --data PATTERN     each facility's shards, e.g. 'data/{facility}/*_train_*.bin'\n"
    "  --state PATTERN    each facility's --state DIR (e.g. 'state/{facility}')\n"
    "  --threads N        cpu threads per train process (default: cores / facilities)\n"
    "  --deadline SECS    aggregate's --deadline (default 60)\n"
    "  -- INIT-FLAGS      flags for 'xffl init' (e.g. -- --model tiny --algo diloco)\n"
    "\n"
    "stdout: one line per round (--json: one object per round) with the version made.\n"
    "exit codes: 0 done, 1 a job failed (its exit code is named), 2 usage.\n";

static void print_round(void *ctx, long round, double seconds)
{
    (void)ctx;
    if (cli_json)
        printf("{\"round\": %ld, \"version\": %ld, \"seconds\": %.3f}\n", round, round, seconds);
    else
        printf("round %ld: v%06ld in %.1fs\n", round, round, seconds);
    fflush(stdout);
}

int cmd_simulate(int argc, char **argv)
{
    const char *cmd = "simulate";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    pipe_simulate_options o = {.deadline = "60"};
    const cli_opt opts[] = {{"--store", CLI_STR, &o.store_url, 0, 0, NULL},
                            {"--facilities", CLI_STR, &o.facilities, 0, 0, NULL},
                            {"--data", CLI_STR, &o.data, 0, 0, NULL},
                            {"--state", CLI_STR, &o.state, 0, 0, NULL},
                            {"--deadline", CLI_STR, &o.deadline, 0, 0, NULL},
                            {"--rounds", CLI_LONG, &o.rounds, 1, 999999, NULL},
                            {"--threads", CLI_LONG, &o.threads, 1, 1024, NULL},
                            {0}};
    cli_args args = {.dashdash = 1};
    int rc = cli_parse(cmd, argc, argv, opts, NULL, &args);
    if (rc) return rc;
    o.init_args = argv + args.rest;
    o.n_init_args = argc - args.rest;
    if (!o.store_url || !o.facilities || !o.rounds || !o.data)
        return cli_usage_error(cmd, "--store, --facilities, --rounds and --data are required");
    store *s = NULL;
    if ((rc = cli_open_store(cmd, o.store_url, NULL, &s))) return rc;
    pipe_simulate_result r;
    xffl_status st = pipe_simulate(s, &o, print_round, NULL, &r);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    return r.failed ? 1 : 0;
}
