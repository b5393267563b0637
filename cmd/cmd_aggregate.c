/* xffl aggregate: the aggregation job of one round. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/aggregate.h"

static const char *help =
    "usage: xffl aggregate --store URL [--round R] [--rounds N] [--deadline SECONDS] [--quorum K]\n"
    "                      [--threads N] [--poll SECS] [--no-update] [--state DIR]\n"
    "\n"
    "The aggregation job: waits (polling, at most --deadline seconds) until --quorum\n"
    "facilities have a valid COMMIT for round v+1 built on version v (LATEST), rejects\n"
    "bad deltas (stale base, unknown facility, wrong shapes, non-finite values, bad\n"
    "digests) with a REJECTED object naming the reason, combines the rest with the\n"
    "federation's algorithm (federation.h5; no algorithm flags here) and writes version\n"
    "v+1, then LATEST. Bit-deterministic: any aggregator, thread count or CPU writes\n"
    "the same bytes from the same deltas.\n"
    "\n"
    "  --store URL        s3://bucket/prefix, file:///path or a plain path\n"
    "  --round R          the round this (scheduled) job is for: exit 0 if version R\n"
    "                     exists already, 75 while its base R-1 does not\n"
    "  --rounds N         N rounds in this one process, each as its own job (from R,\n"
    "                     or each time LATEST+1; --deadline for each quorum), one\n"
    "                     result line a round; the arrays a round frees serve the next\n"
    "                     (default 1)\n"
    "  --deadline SECS    how long to wait for the quorum (default 0: check once)\n"
    "  --quorum K         deltas needed (default: the federation's quorum)\n"
    "  --threads N        aggregation threads (default: all cores; never changes bytes)\n"
    "  --poll SECS        seconds between checks while waiting (default 2)\n"
    "  --no-update        write no XOR update beside the version: where every facility\n"
    "                     keeps --state and replays the aggregation (the cheaper route\n"
    "                     with lossy encodings), the update is never read; a facility\n"
    "                     without the cache downloads the version in full either way\n"
    "  --state DIR        this aggregator's own cache: the version it writes (model and\n"
    "                     outer state) is kept there, and the next job, whose base it\n"
    "                     is, reads it from there instead of the store (checked against\n"
    "                     its INDEX); otherwise the base comes in full, or replayed from\n"
    "                     an older cached version. Never in the store.\n" CLI_TRUST_FLAGS_HELP CLI_STORE_FLAGS_HELP
    "\n"
    "stdout: 'v<version> <facilities used>' a round (with --json one object each).\n"
    "exit codes: 0 version written (or already there), 1 failed, 2 usage, 65 bad\n"
    "federation or base version, 74 store unreachable, 75 quorum not reached (nothing\n"
    "of that round written except REJECTED objects; with --rounds, the rounds before it\n"
    "are written).\n";

static void print_round(void *ctx, const pipe_aggregate_result *res)
{
    (void)ctx;
    if (res->already) {
        xffl_log(XFFL_LOG_INFO, "version %lld exists already; nothing to do", (long long)res->version);
        if (cli_json) printf("{\"version\": %lld, \"already\": true}\n", (long long)res->version);
        else printf("v%06lld already\n", (long long)res->version);
    } else {
        xffl_log(XFFL_LOG_INFO, "wrote v%06lld from %d deltas (%d rejected), %llu bytes, %.1fs%s",
                 (long long)res->version, res->n_used, res->n_rejected, (unsigned long long)res->stored_bytes,
                 res->seconds, res->latest_written ? "" : "; LATEST already named it or a later version");
        if (cli_json) {
            printf("{\"version\": %lld, \"already\": false, \"contributors\": [", (long long)res->version);
            for (int i = 0; i < res->n_used; i++) printf("%s\"%s\"", i ? ", " : "", res->used[i]);
            printf("], \"rejected\": %d, \"tokens\": %lld, \"stored_bytes\": %llu, \"seconds\": %.3f, "
                   "\"wait_seconds\": %.3f, \"pseudo_gradient_norm\": %.9g, \"update_norm\": %.9g, "
                   "\"latest_written\": %s, \"base\": \"%s\", \"base_bytes\": %llu}\n",
                   res->n_rejected, (long long)res->tokens, (unsigned long long)res->stored_bytes, res->seconds,
                   res->wait_seconds, res->stats.pg_norm, res->stats.update_norm,
                   res->latest_written ? "true" : "false", pipe_download_route_name(res->base_route),
                   (unsigned long long)res->base_bytes);
        } else {
            printf("v%06lld", (long long)res->version);
            for (int i = 0; i < res->n_used; i++) printf(" %s", res->used[i]);
            printf("\n");
        }
    }
    fflush(stdout); /* a round's line as it ends, for whoever follows the job */
}


int cmd_aggregate(int argc, char **argv)
{
    const char *cmd = "aggregate";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    pipe_trust_options trust = {0};
    pipe_aggregate_options o = {.round = -1, .deadline = 0, .trust = &trust};
    const char *url;
    int rounds = 1;
    const cli_opt opts[] = {{"--round", CLI_I64, &o.round, 1, 999999, NULL},
                            {"--rounds", CLI_INT, &rounds, 1, 999999, NULL},
                            {"--quorum", CLI_INT, &o.quorum, 1, 64, NULL},
                            {"--threads", CLI_INT, &o.threads, 0, 1024, NULL},
                            {"--deadline", CLI_SECONDS, &o.deadline, 0, 0, NULL},
                            {"--poll", CLI_SECONDS, &o.poll, 0, 0, NULL},
                            {"--no-update", CLI_FLAG, &o.no_update, 0, 0, NULL},
                            {"--state", CLI_STR, &o.state_dir, 0, 0, NULL},
                            CLI_TRUST_OPTS(&trust),
                            {0}};
    store *s;
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc || (rc = cli_open_store(cmd, url, &so, &s))) return rc;
    xffl_status st = pipe_aggregate_rounds(s, &o, rounds, print_round, NULL);
    store_close(s);
    return st == XFFL_OK ? 0 : cli_report(cmd, st);
}
