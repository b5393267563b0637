/* Shared pieces of the command line: the only layer that prints or exits.
 * Each subcommand lives in cmd/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns the process exit code. */
#ifndef XFFL_CLI_H
#define XFFL_CLI_H

#include <stdio.h>
#include "common/status.h"
#include "storage/store.h"

/* Prints "xffl <cmd>: <message> (<status name>)" to stderr (message from xffl_errmsg)
 * and returns the exit code for s (DESIGN.md "Exit codes"). XFFL_OK returns 0 silently. */
int cli_report(const char *cmd, xffl_status s);
/* Prints "xffl <cmd>: <formatted>" to stderr and returns 2 (usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Global flags set by xffl.c before dispatch. */
extern int cli_verbose; /* --verbose: HDF5 error stacks, retry logs */
extern int cli_json;    /* --json where a command supports it */

/* Store-I/O flags shared by every command that takes --store:
 * --jobs N, --retries N, --retry-deadline SECONDS. If argv[*i] is one of them,
 * consumes it (and its value), fills opt and returns 1; returns 0 if not one;
 * returns -1 after printing a usage error. */
int cli_store_flag(const char *cmd, int argc, char **argv, int *i, store_options *opt);
#define CLI_STORE_FLAGS_HELP \
    "  --jobs N                parallel transfers (default 4)\n" \
    "  --retries N             retries for transient store errors (default 8)\n" \
    "  --retry-deadline SECS   stop retrying after this long (default 120)\n"

/* Fetches the value of option argv[*i] (advancing *i), or prints a usage error and returns NULL. */
const char *cli_value(const char *cmd, int argc, char **argv, int *i);

/* Arguments of commands that inspect one target (show, verify): PATH|FILE or
 * --store URL, [--version V|latest] (-1 = latest), and the store flags. Returns 0, or
 * the exit code after printing a usage error. */
int cli_parse_target(const char *cmd, int argc, char **argv, store_options *sopt, const char **url, const char **path,
                     int64_t *version);

/* 1 when arg is the long option name, alone or as name=value. */
int cli_is_flag(const char *arg, const char *name);
/* Progress callback for pipelines: prints "xffl <ctx>: <message>" to stderr, where ctx
 * is the subcommand name (a const char *). */
void cli_log_stderr(void *ctx, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Whether argv has -h/--help anywhere. */
int cli_wants_help(int argc, char **argv);

#endif
