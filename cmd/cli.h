/* Shared pieces of the command line: the only layer that prints or exits.
 * Each subcommand lives in cmd/cmd_<name>.c as `int cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns the process exit code. */
#ifndef XFFL_CLI_H
#define XFFL_CLI_H

#include <stdio.h>
#include "common/log.h"
#include "common/status.h"
#include "storage/store.h"

/* Prints "xffl <cmd>: <message> (<status name>)" to stderr (message from xffl_errmsg)
 * and returns the exit code for s (docs/design.md "Exit codes"). XFFL_OK returns 0 silently. */
int cli_report(const char *cmd, xffl_status s);
/* Prints "xffl <cmd>: <formatted>" to stderr and returns 2 (usage). */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Global flag set by xffl.c before dispatch (which also sets up the log sink from
 * --verbose, --quiet and --json: common/log.h). */
extern int cli_json; /* --json: the result as JSON where a command supports it */

/* Options, parsed from one table per command: an array of cli_opt ended by {0}, each
 * naming its destination, so a command states its flags once and every command refuses
 * and reports a bad one the same way. Values point into argv (not copied). */
typedef enum {
    CLI_STR,     /* const char **: the value as given; lo > 0 refuses an empty one */
    CLI_INT,     /* int *: an integer in [lo, hi] */
    CLI_LONG,    /* long *: an integer in [lo, hi] */
    CLI_I64,     /* int64_t *: an integer in [lo, hi] */
    CLI_DOUBLE,  /* double *: a number, within [lo, hi] when lo < hi */
    CLI_SECONDS, /* double *: seconds >= 0 */
    CLI_SIZE,    /* uint64_t *: bytes, with K/M/G/T suffixes */
    CLI_VERSION, /* int64_t *: a version number or 'latest' (-1) */
    CLI_FLAG,    /* int *: set to 1; takes no value */
    CLI_LIST,    /* const char *[hi]: repeatable, filled in order; *seen (required) counts them */
} cli_kind;

typedef struct {
    const char *name; /* "--round": matches "--round V" and "--round=V" (a CLI_FLAG refuses "=V") */
    cli_kind kind;
    void *dst;        /* left as it is (the default) unless the option is given */
    long lo, hi;
    int *seen;        /* optional: incremented each time the option is given */
} cli_opt;

/* What a command takes besides options (operands). All zero: none. */
typedef struct {
    const char **v;   /* receives the operands in order (argv's strings) */
    int max;          /* room in v: one more is a usage error */
    const char *what; /* names them in that error: "PATH" */
    int dashdash;     /* 1: "--" ends the options and what follows is the command's */
    int n;            /* out: operands given */
    int rest;         /* out: argv index after "--" (argc when there was none) */
} cli_args;

/* Parses argv[1..argc) against opts and, when so is not NULL, the store-I/O flags
 * (CLI_STORE_FLAGS_HELP) into so. "-" alone is an operand (a file name, by
 * convention); args may be NULL (no operands). Returns 0, or the exit code (2) after
 * printing one usage error naming the command and the option or value at fault. */
int cli_parse(const char *cmd, int argc, char **argv, const cli_opt *opts, store_options *so, cli_args *args);
#define CLI_STORE_FLAGS_HELP \
    "  --jobs N                parallel transfers (default 4)\n" \
    "  --retries N             retries for transient store errors (default 8)\n" \
    "  --retry-deadline SECS   stop retrying after this long (default 120)\n"

/* The trust flags of the jobs that sign or check signatures (pipelines/trust.h). */
#define CLI_TRUST_FLAGS_HELP \
    "  --keys DIR              key directory (default $XDG_CONFIG_HOME/xffl/keys or\n" \
    "                          ~/.config/xffl/keys); also holds the federation.h5 pins\n" \
    "  --key FILE              this job's private key (default DIR/<facility or aggregator>.key)\n" \
    "  --federation SHA256     the federation.h5 digest to expect (default: pinned on first use)\n"
#define CLI_TRUST_OPTS(t)                                       \
    {"--keys", CLI_STR, &(t)->keys_dir, 1, 0, NULL},            \
    {"--key", CLI_STR, &(t)->key_file, 1, 0, NULL},             \
    {"--federation", CLI_STR, &(t)->federation, 1, 0, NULL}

/* cli_parse for a command that works on one store: --store URL into *url (NULL when not
 * given) besides opts, and the store flags into *so, which it first sets to the defaults
 * (retries logged with --verbose). */
int cli_parse_store(const char *cmd, int argc, char **argv, const cli_opt *opts, const char **url, store_options *so,
                    cli_args *args);
/* Opens the store at url into *s: 0, or the exit code after printing why not (a usage
 * error naming --store URL when url is NULL). */
int cli_open_store(const char *cmd, const char *url, const store_options *so, store **s);

/* Arguments of commands that inspect one target (show, verify): PATH|FILE or
 * --store URL, [--version V|latest] (-1 = latest), and the store flags (*sopt from the
 * defaults). Returns 0, or
 * the exit code after printing a usage error. */
int cli_parse_target(const char *cmd, int argc, char **argv, store_options *sopt, const char **url, const char **path,
                     int64_t *version);

/* What init prints (cmd/init_print.c): a --dry-run's plan, or the version written to url. */
struct pipe_init_result;
void cli_print_init_plan(const struct pipe_init_result *r);
void cli_print_init_result(const char *url, const struct pipe_init_result *r);

/* Prints s to stdout as a JSON string: quoted, with '"', '\\' and control bytes escaped. */
void cli_json_str(const char *s);

/* Writes word to f as one shell word (quoted where a shell would split or expand it),
 * then end: a line that can be pasted into a shell. */
void cli_put_shell_word(FILE *f, const char *word, const char *end);

/* train --dry-run (cmd/train_plan.c): its own flags, one rank's memory plan on stdout;
 * returns the exit code. */
int cli_train_dry_run(int argc, char **argv);

/* Whether argv has -h/--help anywhere. */
int cli_wants_help(int argc, char **argv);

#endif
