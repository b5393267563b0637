/* xffl submit: a facility's (or the aggregator's) chain of Slurm jobs, one per round.
 *
 * Builds one sbatch command line per round around pipelines/slurm/<role>.sbatch, runs
 * sbatch --parsable and chains each job on the previous one with afterok, so a round's
 * job starts only once this scheduler finished the round before. Across facilities
 * nothing is chained: the store is the only thing they share, and a job whose base
 * version or quorum is missing requeues itself (xffl-step) instead of failing. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/version.h"

extern char **environ;

static const char *help =
    "usage: xffl submit --scheduler slurm --role train|aggregate --rounds N --store URL\n"
    "                   [--first-round R] [--facility NAME --data GLOB --state DIR]\n"
    "                   [--partition P] [--account A] [--gpus-per-node N] [--time T]\n"
    "                   [--requeue-delay S] [--deadline S] [--log-dir DIR] [--after JOBID]\n"
    "                   [--env-hook FILE] [--credentials FILE] [--sbatch-arg ARG]...\n"
    "                   [--templates DIR] [--dry-run] [-- STEP ARGS...]\n"
    "\n"
    "Submits a chain of N sbatch jobs, one per round R, R+1, ...: `xffl train ... --round R`\n"
    "(role train, one task per GPU through srun) or `xffl aggregate ... --round R` (role\n"
    "aggregate, CPU only). Each job depends on the one before it (afterok, with\n"
    "--kill-on-invalid-dep=yes). A job whose step exits 75 (base version or quorum not\n"
    "there yet) or 74 (store unreachable) requeues itself to start again --requeue-delay\n"
    "seconds later, until --deadline seconds after its first attempt; then it fails and\n"
    "the rest of its chain is cancelled. Submitting again later resumes: a round already\n"
    "done is a no-op job.\n"
    "\n"
    "  --scheduler slurm      the only scheduler so far (cron: pipelines/cron/)\n"
    "  --role train|aggregate which job to chain\n"
    "  --rounds N             jobs in the chain\n"
    "  --first-round R        round of the first job (default: LATEST + 1, read from the store)\n"
    "  --store URL            s3://bucket/prefix, file:///path or a plain path\n"
    "  --facility NAME        train: this facility's name in the federation\n"
    "  --data GLOB            train: this facility's token shards\n"
    "  --state DIR            train: the facility's local state directory\n"
    "  --partition P          Slurm partition (default: the cluster's default)\n"
    "  --account A            Slurm account to charge\n"
    "  --gpus-per-node N      train: GPUs (and tasks) per node (default 0: one CPU task)\n"
    "  --time T               Slurm time limit of each job (e.g. 2:00:00)\n"
    "  --requeue-delay S      seconds between attempts of a job that is not ready (default 60)\n"
    "  --deadline S           a job fails this long after its first attempt (default 86400)\n"
    "  --log-dir DIR          job logs <DIR>/<job name>-<job id>.out (default ./xffl-logs)\n"
    "  --after JOBID          the first job also waits for JOBID (afterok)\n"
    "  --env-hook FILE        sourced at the start of each job (module load ...; default:\n"
    "                         env.sh beside the templates)\n"
    "  --credentials FILE     store credentials (KEY=VALUE lines, mode 600) read by each job\n"
    "  --sbatch-arg ARG       one more sbatch option, verbatim (repeatable)\n"
    "  --templates DIR        train.sbatch, aggregate.sbatch and xffl-step (default:\n"
    "                         $XFFL_SLURM_DIR, else ../pipelines/slurm or\n"
    "                         ../share/xffl/slurm beside the xffl binary)\n"
    "  --dry-run              print the sbatch command lines, submit nothing\n"
    "  -- STEP ARGS           passed to every `xffl train` / `xffl aggregate` as they are\n"
    "\n"
    "stdout: one line per job, '<job id> <job name> round <R>' (with --json one object per job).\n"
    "exit codes: 0 every job submitted, 1 sbatch failed (the jobs submitted before are\n"
    "listed and stay queued), 2 usage, 65 bad LATEST, 74 store unreachable.\n";

enum { MAX_ARGS = 96, MAX_EXTRA = 32 };

typedef struct {
    const char *role, *store_url, *facility, *data, *state, *partition, *account, *time_limit;
    const char *log_dir, *after, *env_hook, *credentials, *templates;
    long rounds, first_round, gpus, delay, deadline;
    int dry_run;
    const char *sbatch_args[MAX_EXTRA];
    int n_sbatch_args;
    char **step_args;
    int n_step_args;
} submit_opts;


static int exists_exec(const char *path) { return access(path, X_OK) == 0; }

/* The directory holding train.sbatch, aggregate.sbatch and xffl-step: an explicit one,
 * else beside the binary (a build tree: ../pipelines/slurm; an install: ../share/xffl/slurm). */
static int find_templates(const char *given, const char *self, char *out, size_t cap)
{
    const char *env = getenv("XFFL_SLURM_DIR");
    char cand[2][PATH_MAX];
    int n = 0;
    if (given || (env && *env)) {
        if (snprintf(cand[n++], PATH_MAX, "%s", given ? given : env) >= PATH_MAX) n--;
    } else {
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", self);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = 0;
        if (snprintf(cand[n], PATH_MAX, "%s/../pipelines/slurm", dir) < PATH_MAX) n++;
        if (snprintf(cand[n], PATH_MAX, "%s/../share/xffl/slurm", dir) < PATH_MAX) n++;
    }
    for (int i = 0; i < n; i++) {
        char step[PATH_MAX + 16], real[PATH_MAX];
        if (snprintf(step, sizeof step, "%s/xffl-step", cand[i]) >= (int)sizeof step) continue;
        if (exists_exec(step) && realpath(cand[i], real) && snprintf(out, cap, "%s", real) < (int)cap) return 0;
    }
    fprintf(stderr, "xffl submit: no Slurm templates (xffl-step, train.sbatch, aggregate.sbatch) in %s%s%s; "
                    "give --templates DIR\n",
            n ? cand[0] : "(path too long)", n > 1 ? " or " : "", n > 1 ? cand[1] : "");
    return -1;
}

/* Refuses a credentials file another user could read: the job would leak the secret. */
static int check_credentials(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        fprintf(stderr, "xffl submit: credentials file %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "xffl submit: credentials file %s: not a regular file\n", path);
        return -1;
    }
    if (st.st_uid != getuid()) {
        fprintf(stderr, "xffl submit: credentials file %s belongs to uid %u, not to you\n", path, (unsigned)st.st_uid);
        return -1;
    }
    if (st.st_mode & 077) {
        fprintf(stderr, "xffl submit: credentials file %s has mode %03o: others can read it; run 'chmod 600 %s'\n",
                path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    return 0;
}

/* Shell-quotes a for --dry-run output (a line that can be pasted into a shell). */
static void print_quoted(FILE *f, const char *a)
{
    int plain = *a != 0;
    for (const char *p = a; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@", *p)) plain = 0;
    if (plain) {
        fputs(a, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = a; *p; p++) {
        if (*p == '\'') fputs("'\\''", f);
        else fputc(*p, f);
    }
    fputc('\'', f);
}

/* Runs argv (sbatch --parsable ...), returns its stdout's job id in jobid (digits before
 * any ";cluster"). sbatch's stderr passes through. 0 on success. */
static int run_sbatch(char **argv, char *jobid, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) {
        fprintf(stderr, "xffl submit: pipe: %s\n", strerror(errno));
        return -1;
    }
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fd[1], 1);
    posix_spawn_file_actions_addclose(&fa, fd[0]);
    posix_spawn_file_actions_addclose(&fa, fd[1]);
    pid_t pid;
    int e = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fd[1]);
    if (e != 0) {
        close(fd[0]);
        fprintf(stderr, "xffl submit: cannot run %s: %s (is Slurm's client installed and on PATH?)\n", argv[0],
                strerror(e));
        return -1;
    }
    char buf[512];
    size_t len = 0;
    ssize_t r;
    while ((r = read(fd[0], buf + len, sizeof buf - 1 - len)) > 0 || (r < 0 && errno == EINTR))
        if (r > 0) len += (size_t)r;
    close(fd[0]);
    buf[len] = 0;
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "xffl submit: sbatch failed (%s %d)%s%s\n", WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), len ? ": " : "", buf);
        return -1;
    }
    size_t n = strspn(buf, "0123456789");
    if (n == 0 || n >= cap || (buf[n] && !strchr(";\r\n", buf[n]))) {
        fprintf(stderr, "xffl submit: cannot read a job id in sbatch --parsable's output '%s'\n", buf);
        return -1;
    }
    memcpy(jobid, buf, n);
    jobid[n] = 0;
    return 0;
}

/* Exports what every job of the chain needs (sbatch runs with --export=ALL, so the job
 * starts with this environment; no value needs escaping as --export=K=V would). */
static int export_env(const submit_opts *o, const char *self, const char *tdir, const char *log_dir)
{
    char step[PATH_MAX + 16], num[32];
    snprintf(step, sizeof step, "%s/xffl-step", tdir);
    int bad = setenv("XFFL_BIN", self, 1) | setenv("XFFL_STEP", step, 1) | setenv("XFFL_LOG_DIR", log_dir, 1);
    snprintf(num, sizeof num, "%ld", o->delay);
    bad |= setenv("XFFL_REQUEUE_DELAY", num, 1);
    snprintf(num, sizeof num, "%ld", o->deadline);
    bad |= setenv("XFFL_DEADLINE", num, 1);
    char hook[PATH_MAX + 16];
    const char *h = o->env_hook;
    if (!h) {
        snprintf(hook, sizeof hook, "%s/env.sh", tdir);
        h = access(hook, R_OK) == 0 ? hook : NULL;
    }
    char real[PATH_MAX];
    if (h) {
        if (!realpath(h, real)) {
            fprintf(stderr, "xffl submit: env hook %s: %s\n", h, strerror(errno));
            return -1;
        }
        bad |= setenv("XFFL_ENV_HOOK", real, 1);
    } else {
        unsetenv("XFFL_ENV_HOOK");
    }
    if (o->credentials) {
        if (!realpath(o->credentials, real)) {
            fprintf(stderr, "xffl submit: credentials file %s: %s\n", o->credentials, strerror(errno));
            return -1;
        }
        bad |= setenv("XFFL_CREDENTIALS", real, 1);
    }
    if (bad) {
        fprintf(stderr, "xffl submit: setenv failed\n");
        return -1;
    }
    return 0;
}

/* One round's sbatch command line into argv (strings in pool); returns argc or -1. */
static int build_argv(const submit_opts *o, const char *tdir, const char *log_dir, long round, const char *prev,
                      char **argv, char pool[][PATH_MAX + 64])
{
    int n = 0, p = 0;
#define ADD(s) do { if (n >= MAX_ARGS - 1) return -1; argv[n++] = (char *)(s); } while (0)
#define ADDF(...) do { if (p >= MAX_ARGS) return -1; snprintf(pool[p], PATH_MAX + 64, __VA_ARGS__); ADD(pool[p++]); } while (0)
    int train = !strcmp(o->role, "train");
    ADD("sbatch");
    ADD("--parsable");
    ADD("--export=ALL");
    if (train) ADDF("--job-name=xffl-train-%s-r%ld", o->facility, round);
    else ADDF("--job-name=xffl-aggregate-r%ld", round);
    ADDF("--output=%s/%%x-%%j.out", log_dir);
    ADD("--open-mode=append");
    ADD("--requeue");
    ADD("--nodes=1");
    if (train && o->gpus > 0) {
        ADDF("--gpus-per-node=%ld", o->gpus);
        ADDF("--ntasks-per-node=%ld", o->gpus);
    } else {
        ADD("--ntasks=1");
    }
    if (o->partition) ADDF("--partition=%s", o->partition);
    if (o->account) ADDF("--account=%s", o->account);
    if (o->time_limit) ADDF("--time=%s", o->time_limit);
    if (prev) {
        ADDF("--dependency=afterok:%s", prev);
        ADD("--kill-on-invalid-dep=yes");
    }
    for (int i = 0; i < o->n_sbatch_args; i++) ADD(o->sbatch_args[i]);
    ADDF("%s/%s.sbatch", tdir, train ? "train" : "aggregate");
    ADD("--store");
    ADD(o->store_url);
    if (train) {
        ADD("--facility");
        ADD(o->facility);
        ADD("--data");
        ADD(o->data);
        ADD("--state");
        ADD(o->state);
    }
    ADD("--round");
    ADDF("%ld", round);
    for (int i = 0; i < o->n_step_args; i++) ADD(o->step_args[i]);
    argv[n] = NULL;
    return n;
#undef ADD
#undef ADDF
}

/* LATEST + 1: the round the chain starts with when none is named. */
static int first_round_from_store(const char *url, const store_options *so, long *round)
{
    store *s = NULL;
    xffl_status st = store_open(url, so, &s);
    pipe_version_ref ref;
    if (st == XFFL_OK) st = pipe_latest_read(s, &ref);
    store_close(s);
    if (st == XFFL_ERR_NOT_FOUND) {
        fprintf(stderr, "xffl submit: %s has no LATEST (run xffl init first, or give --first-round)\n", url);
        return 1;
    }
    if (st != XFFL_OK) return cli_report("submit", st);
    *round = (long)ref.version + 1;
    return 0;
}

static int parse_args(int argc, char **argv, submit_opts *o, store_options *so)
{
    const char *cmd = "submit", *scheduler = NULL;
    /* Empty strings refused (lo 1): they would become empty sbatch or step arguments. */
    const cli_opt opts[] = {{"--scheduler", CLI_STR, &scheduler, 1, 0, NULL},
                            {"--role", CLI_STR, &o->role, 1, 0, NULL},
                            {"--store", CLI_STR, &o->store_url, 1, 0, NULL},
                            {"--facility", CLI_STR, &o->facility, 1, 0, NULL},
                            {"--data", CLI_STR, &o->data, 1, 0, NULL},
                            {"--state", CLI_STR, &o->state, 1, 0, NULL},
                            {"--partition", CLI_STR, &o->partition, 1, 0, NULL},
                            {"--account", CLI_STR, &o->account, 1, 0, NULL},
                            {"--time", CLI_STR, &o->time_limit, 1, 0, NULL},
                            {"--log-dir", CLI_STR, &o->log_dir, 1, 0, NULL},
                            {"--after", CLI_STR, &o->after, 1, 0, NULL},
                            {"--env-hook", CLI_STR, &o->env_hook, 1, 0, NULL},
                            {"--credentials", CLI_STR, &o->credentials, 1, 0, NULL},
                            {"--templates", CLI_STR, &o->templates, 1, 0, NULL},
                            {"--rounds", CLI_LONG, &o->rounds, 1, 10000, NULL},
                            {"--first-round", CLI_LONG, &o->first_round, 1, 999999, NULL},
                            {"--gpus-per-node", CLI_LONG, &o->gpus, 0, 64, NULL},
                            {"--requeue-delay", CLI_LONG, &o->delay, 0, 86400 * 7, NULL},
                            {"--deadline", CLI_LONG, &o->deadline, 0, 86400 * 365, NULL},
                            {"--dry-run", CLI_FLAG, &o->dry_run, 0, 0, NULL},
                            {"--sbatch-arg", CLI_LIST, o->sbatch_args, 0, MAX_EXTRA, &o->n_sbatch_args},
                            {0}};
    cli_args args = {.dashdash = 1};
    int rc = cli_parse(cmd, argc, argv, opts, so, &args);
    if (rc) return rc;
    o->step_args = argv + args.rest;
    o->n_step_args = argc - args.rest;
    if (o->n_step_args > MAX_EXTRA) return cli_usage_error(cmd, "too many step arguments (at most %d)", MAX_EXTRA);
    if (!scheduler) return cli_usage_error(cmd, "--scheduler slurm is required");
    if (strcmp(scheduler, "slurm"))
        return cli_usage_error(cmd, "unknown scheduler '%s' (slurm; for cron see pipelines/cron/)", scheduler);
    if (!o->role) return cli_usage_error(cmd, "--role train|aggregate is required");
    if (strcmp(o->role, "train") && strcmp(o->role, "aggregate"))
        return cli_usage_error(cmd, "--role must be train or aggregate, not '%s'", o->role);
    if (!o->rounds) return cli_usage_error(cmd, "--rounds N is required");
    if (!o->store_url) return cli_usage_error(cmd, "--store URL is required");
    int train = !strcmp(o->role, "train");
    if (train && (!o->facility || !o->data || !o->state))
        return cli_usage_error(cmd, "--role train needs --facility NAME, --data GLOB and --state DIR");
    if (!train && (o->facility || o->data || o->state || o->gpus))
        return cli_usage_error(cmd, "--facility, --data, --state and --gpus-per-node are for --role train");
    if (train && strspn(o->facility, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") !=
                     strlen(o->facility))
        return cli_usage_error(cmd, "--facility '%s': letters, digits, '_', '.', '-' only", o->facility);
    if (o->after && strspn(o->after, "0123456789") != strlen(o->after))
        return cli_usage_error(cmd, "--after needs a job id, not '%s'", o->after);
    return 0;
}

int cmd_submit(int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    submit_opts o = {.first_round = 0, .delay = 60, .deadline = 86400, .log_dir = "xffl-logs"};
    store_options so;
    store_options_default(&so);
    int rc = parse_args(argc, argv, &o, &so);
    if (rc) return rc;

    char self[PATH_MAX], tdir[PATH_MAX], log_dir[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0) {
        fprintf(stderr, "xffl submit: cannot find my own binary: /proc/self/exe: %s\n", strerror(errno));
        return 1;
    }
    self[sl] = 0;
    if (find_templates(o.templates, self, tdir, sizeof tdir)) return 1;
    if (o.credentials && check_credentials(o.credentials)) return 1;
    if (!o.first_round && (rc = first_round_from_store(o.store_url, &so, &o.first_round))) return rc;
    if (!o.dry_run) {
        xffl_status st = xffl_mkdirs(o.log_dir);
        if (st != XFFL_OK) return cli_report("submit", st);
    }
    if (!realpath(o.log_dir, log_dir)) {
        if (!o.dry_run || o.log_dir[0] == '/') snprintf(log_dir, sizeof log_dir, "%s", o.log_dir);
        else if (!getcwd(log_dir, sizeof log_dir) ||
                 strlen(log_dir) + strlen(o.log_dir) + 2 > sizeof log_dir) snprintf(log_dir, sizeof log_dir, "%s", o.log_dir);
        else {
            strcat(log_dir, "/");
            strcat(log_dir, o.log_dir);
        }
    }
    if (export_env(&o, self, tdir, log_dir)) return 1;

    static char pool[MAX_ARGS][PATH_MAX + 64];
    char *args[MAX_ARGS];
    char prev[32] = "", jobid[32];
    if (o.after) snprintf(prev, sizeof prev, "%s", o.after);
    if (o.dry_run)
        fprintf(stderr, "xffl submit: dry run; jobs would run with XFFL_BIN=%s XFFL_STEP=%s/xffl-step "
                        "XFFL_LOG_DIR=%s XFFL_REQUEUE_DELAY=%ld XFFL_DEADLINE=%ld%s%s\n",
                self, tdir, log_dir, o.delay, o.deadline, getenv("XFFL_ENV_HOOK") ? " XFFL_ENV_HOOK=" : "",
                getenv("XFFL_ENV_HOOK") ? getenv("XFFL_ENV_HOOK") : "");
    for (long k = 0; k < o.rounds; k++) {
        long round = o.first_round + k;
        int n = build_argv(&o, tdir, log_dir, round, prev[0] ? prev : NULL, args, pool);
        if (n < 0) {
            fprintf(stderr, "xffl submit: sbatch command line too long\n");
            return 1;
        }
        const char *name = args[3] + strlen("--job-name=");
        if (o.dry_run) {
            for (int i = 0; i < n; i++) {
                if (i) putchar(' ');
                print_quoted(stdout, args[i]);
            }
            putchar('\n');
            snprintf(prev, sizeof prev, "<job of round %ld>", round);
            continue;
        }
        if (run_sbatch(args, jobid, sizeof jobid)) {
            fprintf(stderr, "xffl submit: round %ld not submitted; %ld of %ld jobs are queued%s%s\n", round, k,
                    o.rounds, k ? ", the last is job " : "", k ? prev : "");
            return 1;
        }
        if (cli_json)
            printf("{\"job\": %s, \"name\": \"%s\", \"round\": %ld, \"after\": %s}\n", jobid, name, round,
                   prev[0] ? prev : "null");
        else
            printf("%s %s round %ld\n", jobid, name, round);
        fflush(stdout);
        fprintf(stderr, "xffl submit: job %s: %s round %ld%s%s\n", jobid, o.role, round, prev[0] ? " after job " : "",
                prev);
        snprintf(prev, sizeof prev, "%s", jobid);
    }
    return 0;
}
