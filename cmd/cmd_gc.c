/* xffl gc: remove orphans and old versions. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/inspect.h"

static const char *help =
    "usage: xffl gc --store URL --keep N [--grace SECONDS] [--dry-run]\n"
    "\n"
    "Removes objects nothing references (a killed upload's parts, a losing\n"
    "aggregator's version, partial writes), versions older than the N newest on\n"
    "LATEST's chain, and the rounds that built them. Never removes LATEST,\n"
    "federation.h5, what a kept version or a pending round needs, nor any object\n"
    "younger than --grace (it may belong to an upload still in progress).\n"
    "\n"
    "  --store URL       s3://bucket/prefix, file:///path or a plain path\n"
    "  --keep N          versions to keep, LATEST included (>= 1)\n"
    "  --grace SECONDS   never remove objects younger than this (default 3600)\n"
    "  --dry-run         list what would be removed\n" CLI_STORE_FLAGS_HELP
    "\n"
    "stdout: one line per removed object, then a summary.\n"
    "exit codes: 0 done, 1 failed, 2 usage, 65 LATEST damaged (nothing removed),\n"
    "74 store unreachable.\n";

int cmd_gc(int argc, char **argv)
{
    const char *cmd = "gc";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    store_options so;
    const char *url;
    pipe_gc_options o = {.keep = 0, .grace = 3600, .dry_run = 0};
    const cli_opt opts[] = {{"--keep", CLI_INT, &o.keep, 1, 1000000, NULL},
                            {"--grace", CLI_SECONDS, &o.grace, 0, 0, NULL},
                            {"--dry-run", CLI_FLAG, &o.dry_run, 0, 0, NULL},
                            {0}};
    int rc = cli_parse_store(cmd, argc, argv, opts, &url, &so, NULL);
    if (rc) return rc;
    if (!url) return cli_usage_error(cmd, "--store URL is required");
    if (o.keep < 1) return cli_usage_error(cmd, "--keep N is required");
    store *s;
    if ((rc = cli_open_store(cmd, url, &so, &s))) return rc;
    pipe_gc_report rep;
    xffl_status st = pipe_gc(s, &o, &rep);
    store_close(s);
    /* what was removed before an error too: the store no longer has it */
    for (int i = 0; i < rep.removed; i++)
        printf("%s %s (%s%llu bytes)\n", o.dry_run ? "would remove" : "removed", rep.items[i].key,
               rep.items[i].partial ? "partial write, " : "", (unsigned long long)rep.items[i].bytes);
    pipe_gc_report_free(&rep);
    if (st != XFFL_OK) return cli_report(cmd, st);
    printf("%s %d objects (%llu bytes); %d younger than --grace kept\n", o.dry_run ? "would remove" : "removed",
           rep.removed, (unsigned long long)rep.removed_bytes, rep.kept_young);
    return 0;
}

