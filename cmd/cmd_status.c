/* xffl status: where the federation stands, from the store alone. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"
#include "pipelines/history.h"

static const char *help =
    "usage: xffl status --store URL [--history] [--json]\n"
    "\n"
    "Where the federation stands: LATEST (version, tokens seen, algorithm), the round\n"
    "in progress with each facility's latest attempt (pending, rejected with its\n"
    "reason, partial upload), tokens and last train loss; --history adds every kept\n"
    "round's contributors. Reads only the store (COMMITs carry the figures).\n"
    "\n"
    "  --store URL   s3://bucket/prefix, file:///path or a plain path\n"
    "  --history     one line per facility per kept round\n"
    "  --json        one JSON object on stdout (always with the history)\n" CLI_STORE_FLAGS_HELP
    "\n"
    "exit codes: 0 shown, 1 failed, 2 usage, 65 damaged store, 74 store unreachable.\n";

static void json_entry(const pipe_history_entry *e)
{
    printf("{\"facility\": ");
    cli_json_str(e->facility);
    printf(", \"attempt\": %d, \"state\": \"%s\", \"tokens\": %lld, \"steps\": %lld, \"loss_first\": %.6g, "
           "\"loss_last\": %.6g, \"loss_mean\": %.6g, \"seconds\": %.3f, \"bytes\": %llu, \"commit\": ",
           e->attempt, pipe_attempt_state_name(e->state), (long long)e->tokens, (long long)e->steps, e->loss_first,
           e->loss_last, e->loss_mean, e->seconds, (unsigned long long)e->bytes);
    cli_json_str(e->commit_key);
    if (e->reason[0]) {
        printf(", \"reason\": ");
        cli_json_str(e->reason);
    }
    printf("}");
}

int cmd_status(int argc, char **argv)
{
    const char *cmd = "status";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    const char *url;
    int history = 0;
    const cli_opt opts[] = {{"--history", CLI_FLAG, &history, 0, 0, NULL}, {0}};
    store *s;
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc || (rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_history h;
    xffl_status st = pipe_history_load(s, &h);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    const pipe_history_round *cur = &h.rounds[h.n_rounds - 1];
    const pipe_history_round *last = h.n_rounds > 1 ? &h.rounds[h.n_rounds - 2] : NULL;
    if (cli_json) {
        printf("{\"latest\": {\"version\": %lld, \"index\": ", (long long)h.latest.version);
        cli_json_str(h.latest.index_key);
        printf(", \"tokens_seen\": %lld}, \"algorithm\": \"%s\", \"quorum\": %d, \"local_steps\": %d, ",
               (long long)(last ? last->tokens_seen : 0), pipe_algo_name(h.f.algo.kind), h.f.quorum, h.f.local_steps);
        if (h.f.n_step_phases) {
            char sched[PIPE_STEP_SCHEDULE_MAX];
            pipe_federation_format_steps(&h.f, sched);
            printf("\"local_steps_schedule\": \"%s\", ", sched);
        }
        printf("\"facilities\": [");
        for (int i = 0; i < h.f.n_facilities; i++) {
            printf(i ? ", " : "");
            cli_json_str(h.f.facilities[i]);
        }
        printf("], \"rounds\": [");
        for (int r = 0; r < h.n_rounds; r++) {
            const pipe_history_round *hr = &h.rounds[r];
            printf("%s{\"round\": %lld, \"done\": %s, \"tokens_seen\": %lld, \"version_bytes\": %llu, \"entries\": [",
                   r ? ", " : "", (long long)hr->round, hr->done ? "true" : "false", (long long)hr->tokens_seen,
                   (unsigned long long)hr->version_bytes);
            for (int e = 0; e < hr->n; e++) {
                printf(e ? ", " : "");
                json_entry(&hr->e[e]);
            }
            printf("]}");
        }
        printf("]}\n");
        pipe_history_free(&h);
        return 0;
    }
    printf("LATEST        v%06lld  %s\n", (long long)h.latest.version, h.latest.index_key);
    printf("tokens seen   %lld\n", (long long)(last ? last->tokens_seen : 0));
    char sched[PIPE_STEP_SCHEDULE_MAX] = "";
    pipe_federation_format_steps(&h.f, sched);
    printf("algorithm     %s, H=%d%s%s, quorum %d of %d (", pipe_algo_name(h.f.algo.kind), h.f.local_steps,
           sched[0] ? " after " : "", sched, h.f.quorum, h.f.n_facilities);
    for (int i = 0; i < h.f.n_facilities; i++) printf("%s%s", i ? "," : "", h.f.facilities[i]);
    printf(")\n");
    if (!pipe_federation_signed(&h.f))
        printf("signatures    none: an unsigned federation (init --insecure); anyone who can write to the\n"
               "              store can forge deltas and versions (docs/design.md \"Trust\")\n");
    if (history)
        for (int r = 0; r + 1 < h.n_rounds; r++) {
            const pipe_history_round *hr = &h.rounds[r];
            for (int e = 0; e < hr->n; e++)
                printf("round %-6lld %-12s tokens %-9lld loss %.4f -> %.4f  %.1fs  %llu bytes\n", (long long)hr->round,
                       hr->e[e].facility, (long long)hr->e[e].tokens, hr->e[e].loss_first, hr->e[e].loss_last,
                       hr->e[e].seconds, (unsigned long long)hr->e[e].bytes);
        }
    printf("round %lld in progress:\n", (long long)cur->round);
    for (int i = 0; i < h.f.n_facilities; i++) {
        const pipe_history_entry *e = NULL;
        for (int k = 0; k < cur->n; k++)
            if (!strcmp(cur->e[k].facility, h.f.facilities[i])) e = &cur->e[k];
        if (!e) {
            printf("  %-12s no attempt yet\n", h.f.facilities[i]);
            continue;
        }
        printf("  %-12s a%d %-8s", e->facility, e->attempt, pipe_attempt_state_name(e->state));
        if (e->commit_key[0])
            printf(" tokens %lld, loss %.4f -> %.4f", (long long)e->tokens, e->loss_first, e->loss_last);
        if (e->reason[0]) printf(" (%s)", e->reason);
        printf("\n");
    }
    for (int k = 0; k < cur->n; k++)
        if (pipe_federation_facility_index(&h.f, cur->e[k].facility) < 0)
            printf("  %-12s a%d %-8s (not in the federation)\n", cur->e[k].facility, cur->e[k].attempt,
                   pipe_attempt_state_name(cur->e[k].state));
    pipe_history_free(&h);
    return 0;
}
