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

static void out_line(void *ctx, int problem, const char *fmt, ...)
{
    (void)ctx, (void)problem;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
}

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
    xffl_status st = pipe_gc(s, &o, out_line, NULL, &rep);
    store_close(s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    printf("%s %d objects (%llu bytes); %d younger than --grace kept\n", o.dry_run ? "would remove" : "removed",
           rep.removed, (unsigned long long)rep.removed_bytes, rep.kept_young);
    return 0;
}

/* `xffl verify --all` (cmd/cmd_verify.c calls this hook when it sees --all): lives
 * here beside gc because both are the store-wide scan of pipelines/inspect. */
static void verify_line(void *ctx, int problem, const char *fmt, ...)
{
    (void)ctx;
    va_list ap;
    va_start(ap, fmt);
    fputs(problem ? "xffl verify: " : "xffl verify: warning: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int cmd_verify_all(int argc, char **argv);
int cmd_verify_all(int argc, char **argv)
{
    const char *cmd = "verify";
    store_options so;
    store_options_default(&so);
    so.verbose = cli_verbose;
    const char *url = NULL;
    const char *pos = NULL;
    int64_t version = -1;
    int all = 0, version_given = 0;
    /* verify's own options too, so that one which means nothing here is named as such */
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--all", CLI_FLAG, &all, 0, 0, NULL},
                            {"--version", CLI_VERSION, &version, 0, 0, &version_given},
                            {0}};
    cli_args args = {.v = &pos, .max = 1, .what = "URL"};
    int rc = cli_parse(cmd, argc, argv, opts, &so, &args);
    if (rc) return rc;
    if (version_given) return cli_usage_error(cmd, "'--version' does not go with --all");
    if (pos && url) return cli_usage_error(cmd, "'%s' does not go with --store URL", pos);
    if (pos) url = pos;
    if (!url) return cli_usage_error(cmd, "--all needs --store URL");
    store *s = NULL;
    xffl_status st = store_open(url, &so, &s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    pipe_verify_report rep;
    st = pipe_verify_all(s, verify_line, NULL, &rep);
    store_close(s);
    if (cli_json)
        printf("{\"ok\": %s, \"versions\": %d, \"commits\": %d, \"objects\": %d, \"problems\": %d, \"orphans\": %d}\n",
               st == XFFL_OK ? "true" : "false", rep.versions_checked, rep.commits_checked, rep.objects_checked,
               rep.n_problems, rep.n_orphans);
    if (st != XFFL_OK) return cli_report(cmd, st);
    if (!cli_json)
        printf("ok: %d versions, %d commits, %d delta objects verified; %d orphans\n", rep.versions_checked,
               rep.commits_checked, rep.objects_checked, rep.n_orphans);
    return 0;
}
