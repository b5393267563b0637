/* xffl: cross-facility federated training of LLaMA-family models.
 * Git-style subcommands; each lives in cmd/cmd_<name>.c. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"

typedef int (*cmd_fn)(int argc, char **argv);

#define XFFL_COMMANDS(X)                                                                          \
    X(init, "create a federation: federation.h5 and version 0")                                   \
    X(keygen, "write one Ed25519 key pair (a facility's or the aggregator's)")                   \
    X(train, "one facility's job: train round LATEST+1 (or --rounds N) locally, upload its delta")             \
    X(aggregate, "the aggregation job: merge a round's deltas into the next version")            \
    X(status, "where the federation stands: LATEST, the round in progress, facilities")         \
    X(ls, "list versions, rounds, facilities and sizes in a store")                              \
    X(show, "model config, tensors, sizes and compression of a version or HDF5 file")           \
    X(verify, "check structure and every digest of a store, version or HDF5 file")              \
    X(gc, "remove unreferenced objects and old versions")                                         \
    X(pull, "copy a version into a local directory that h5dump opens")                           \
    X(cp, "copy versions between stores (file:// and s3://)")                                   \
    X(export, "export a version (llama2c format)")                                                \
    X(eval, "validation loss and perplexity of a version on token shards")                       \
    X(sample, "generate text from a version")                                                     \
    X(reproduce, "recompute a round from the stored versions and deltas and compare digests")    \
    X(data, "data pack: text files to train/val token shards")                                   \
    X(simulate, "run a whole federation locally, facilities as separate processes")             \
    X(plot, "plot loss per round per facility (gnuplot)")                                         \
    X(submit, "submit a facility's or the aggregator's chain of Slurm jobs")

#define DECLARE(name, help) int cmd_##name(int argc, char **argv);
XFFL_COMMANDS(DECLARE)
#undef DECLARE

static const struct {
    const char *name;
    const char *help;
} commands[] = {
#define ENTRY(name, help) {#name, help},
    XFFL_COMMANDS(ENTRY)
#undef ENTRY
};

static cmd_fn lookup(const char *name)
{
#define MATCH(n, help) if (strcmp(name, #n) == 0) return cmd_##n;
    XFFL_COMMANDS(MATCH)
#undef MATCH
    return NULL;
}

/* A global flag into log (and cli_json): 1 if arg is one. Short forms only before the
 * command, where no subcommand's option can be meant. */
static int global_flag(const char *arg, int short_ok, xffl_log_config *log)
{
    if (!strcmp(arg, "--verbose") || (short_ok && !strcmp(arg, "-v"))) log->level = XFFL_LOG_DEBUG;
    else if (!strcmp(arg, "--quiet") || (short_ok && !strcmp(arg, "-q"))) log->level = XFFL_LOG_WARN;
    else if (!strcmp(arg, "--json")) cli_json = log->json = 1;
    else return 0;
    return 1;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: xffl [--verbose|--quiet] [--json] <command> [options]\n"
            "\n"
            "Cross-facility federated training: facilities share only an object store\n"
            "(s3://bucket/prefix, file:///path or a plain path); each step is a batch job.\n"
            "\n"
            "commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
    fprintf(f,
            "\n"
            "global flags (before or after the command; -v and -q before it; the last wins):\n"
            "  -v, --verbose   also debug lines: each store retry, HDF5 error stacks\n"
            "  -q, --quiet     only warnings and errors on stderr (no progress lines)\n"
            "  --json          the result as JSON where a command supports it, and each\n"
            "                  stderr line as a JSON object {\"level\", \"cmd\", \"msg\"}\n"
            "\n"
            "'xffl <command> --help' describes a command.\n"
            "exit codes: 0 done, 1 failed, 2 usage, 65 bad input data, 74 store unreachable,\n"
            "75 not yet (try again later; nothing was changed).\n");
}

int main(int argc, char **argv)
{
    xffl_log_config log = {.level = XFFL_LOG_INFO};
    int i = 1;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (global_flag(argv[i], 1, &log)) continue;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "xffl: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (i >= argc) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[i], "help")) {
        if (i + 1 < argc) {
            cmd_fn fn = lookup(argv[i + 1]);
            if (fn) {
                char *hargv[] = {argv[i + 1], "--help", NULL};
                return fn(2, hargv);
            }
        }
        usage(stdout);
        return 0;
    }
    cmd_fn fn = lookup(argv[i]);
    if (!fn) {
        fprintf(stderr, "xffl: unknown command '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }
    /* The global flags are taken out here so no subcommand parses them. */
    int n = 0;
    for (int k = i; k < argc; k++)
        if (!global_flag(argv[k], 0, &log)) argv[i + n++] = argv[k];
    argv[i + n] = NULL;
    /* The one set-up of the log sink: every line after this is "xffl <command>: ...". */
    log.cmd = argv[i];
    xffl_log_setup(&log);
    return fn(n, argv + i);
}
