/* pipe_submit (contract in submit.h). */
#include "pipelines/submit.h"

#include <errno.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/version.h"

extern char **environ;

enum { MAX_ARGS = 96, ARG_MAX_LEN = PATH_MAX + 64 };

/* Submit's own refusals: the message is the whole story (res->refused). */
static XFFL_MUST_USE xffl_status refuse(pipe_submit_result *res, xffl_status s)
{
    res->refused = 1;
    return s;
}

static int exists_exec(const char *path) { return access(path, X_OK) == 0; }

/* The directory holding train.sbatch, aggregate.sbatch and xffl-step: an explicit one,
 * else beside the binary (a build tree: ../pipelines/slurm; an install: ../share/xffl/slurm). */
static XFFL_MUST_USE xffl_status find_templates(const char *given, const char *self, char *out, size_t cap)
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
        if (exists_exec(step) && realpath(cand[i], real) && snprintf(out, cap, "%s", real) < (int)cap) return XFFL_OK;
    }
    return xffl_fail(XFFL_ERR_NOT_FOUND,
                     "no Slurm templates (xffl-step, train.sbatch, aggregate.sbatch) in %s%s%s; give --templates DIR",
                     n ? cand[0] : "(path too long)", n > 1 ? " or " : "", n > 1 ? cand[1] : "");
}

/* Refuses a credentials (or private key) file another user could read: the job would
 * leak the secret. what: "credentials file", "private key file". */
static XFFL_MUST_USE xffl_status check_secret(const char *what, const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) return xffl_fail(XFFL_ERR_IO, "%s %s: %s", what, path, strerror(errno));
    XFFL_RETURN_IF(!S_ISREG(st.st_mode), XFFL_ERR_AUTH, "%s %s: not a regular file", what, path);
    XFFL_RETURN_IF(st.st_uid != getuid(), XFFL_ERR_AUTH, "%s %s belongs to uid %u, not to you", what, path,
                   (unsigned)st.st_uid);
    XFFL_RETURN_IF(st.st_mode & 077, XFFL_ERR_AUTH, "%s %s has mode %03o: others can read it; run 'chmod 600 %s'",
                   what, path, (unsigned)(st.st_mode & 0777), path);
    return XFFL_OK;
}

/* --key FILE and --keys DIR as absolute paths (the jobs start elsewhere); "" when not given. */
static XFFL_MUST_USE xffl_status absolute_keys(const pipe_submit_options *o, char key[PATH_MAX], char dir[PATH_MAX])
{
    key[0] = dir[0] = 0;
    if (o->key_file && !realpath(o->key_file, key))
        return xffl_fail(XFFL_ERR_IO, "private key file %s: %s", o->key_file, strerror(errno));
    if (o->keys_dir && !realpath(o->keys_dir, dir))
        return xffl_fail(XFFL_ERR_IO, "key directory %s: %s", o->keys_dir, strerror(errno));
    return XFFL_OK;
}

/* Runs argv (sbatch --parsable ...), returns its stdout's job id in jobid (digits before
 * any ";cluster"). sbatch's stderr passes through. */
static XFFL_MUST_USE xffl_status run_sbatch(char **argv, char *jobid, size_t cap)
{
    int fd[2];
    if (pipe(fd) != 0) return xffl_fail(XFFL_ERR_IO, "pipe: %s", strerror(errno));
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
        return xffl_fail(XFFL_ERR_UNSUPPORTED, "cannot run %s: %s (is Slurm's client installed and on PATH?)", argv[0],
                         strerror(e));
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
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return xffl_fail(XFFL_ERR_IO, "sbatch failed (%s %d)%s%s", WIFEXITED(status) ? "exit" : "signal",
                         WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), len ? ": " : "", buf);
    size_t n = strspn(buf, "0123456789");
    if (n == 0 || n >= cap || (buf[n] && !strchr(";\r\n", buf[n])))
        return xffl_fail(XFFL_ERR_IO, "cannot read a job id in sbatch --parsable's output '%s'", buf);
    memcpy(jobid, buf, n);
    jobid[n] = 0;
    return XFFL_OK;
}

/* Exports what every job of the chain needs (sbatch runs with --export=ALL, so the job
 * starts with this environment; no value needs escaping as --export=K=V would). */
static XFFL_MUST_USE xffl_status export_env(const pipe_submit_options *o, const char *self, const char *tdir, const char *log_dir)
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
        if (!realpath(h, real)) return xffl_fail(XFFL_ERR_IO, "env hook %s: %s", h, strerror(errno));
        bad |= setenv("XFFL_ENV_HOOK", real, 1);
    } else {
        unsetenv("XFFL_ENV_HOOK");
    }
    if (o->credentials) {
        if (!realpath(o->credentials, real))
            return xffl_fail(XFFL_ERR_IO, "credentials file %s: %s", o->credentials, strerror(errno));
        bad |= setenv("XFFL_CREDENTIALS", real, 1);
    }
    XFFL_RETURN_IF(bad, XFFL_ERR_NOMEM, "setenv failed");
    return XFFL_OK;
}

/* The sbatch command line of the job for rounds round..round+count-1 into argv (strings
 * in pool); returns argc or -1. */
static int build_argv(const pipe_submit_options *o, const char *tdir, const char *log_dir, const char *key,
                      const char *keys_dir, long round, long count, const char *prev, char **argv,
                      char (*pool)[ARG_MAX_LEN])
{
    int n = 0, p = 0;
#define ADD(s) do { if (n >= MAX_ARGS - 1) return -1; argv[n++] = (char *)(s); } while (0)
#define ADDF(...) do { if (p >= MAX_ARGS) return -1; snprintf(pool[p], ARG_MAX_LEN, __VA_ARGS__); ADD(pool[p++]); } while (0)
    int train = !strcmp(o->role, "train");
    ADD("sbatch");
    ADD("--parsable");
    ADD("--export=ALL");
    if (train) ADDF("--job-name=xffl-train-%s-r%ld", o->facility, round);
    else ADDF("--job-name=xffl-aggregate-r%ld", round);
    ADDF("--output=%s/%%x-%%j.out", log_dir);
    ADD("--open-mode=append");
    ADD("--requeue");
    /* nodes x tasks per node, one task per GPU: train.sbatch runs one rank per task */
    ADDF("--nodes=%ld", train && o->nodes > 1 ? o->nodes : 1);
    long tasks = train ? (o->tasks_per_node > 0 ? o->tasks_per_node : o->gpus) : 0;
    if (train && o->gpus > 0) ADDF("--gpus-per-node=%ld", o->gpus);
    if (tasks > 0) ADDF("--ntasks-per-node=%ld", tasks);
    else ADD("--ntasks=1");
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
    }
    if (o->state) { /* train: required; aggregate: its cache, when given */
        ADD("--state");
        ADD(o->state);
    }
    ADD("--round");
    ADDF("%ld", round);
    if (count > 1) {
        ADD("--rounds");
        ADDF("%ld", count);
    }
    /* the key the user gave signs every COMMIT (train) or INDEX (aggregate) */
    if (key[0]) {
        ADD("--key");
        ADD(key);
    }
    if (keys_dir[0]) {
        ADD("--keys");
        ADD(keys_dir);
    }
    for (int i = 0; i < o->n_step_args; i++) ADD(o->step_args[i]);
    argv[n] = NULL;
    return n;
#undef ADD
#undef ADDF
}

/* The log directory as an absolute path for the jobs: a dry run creates nothing, so
 * one that does not exist yet is taken relative to the working directory. */
static void absolute_log_dir(const char *given, int dry_run, char *out, size_t cap)
{
    if (realpath(given, out)) return;
    if (!dry_run || given[0] == '/' || !getcwd(out, cap) || strlen(out) + strlen(given) + 2 > cap)
        snprintf(out, cap, "%s", given);
    else {
        strcat(out, "/");
        strcat(out, given);
    }
}

/* Builds and submits (or, in a dry run, hands over) the chain's command lines. */
static XFFL_MUST_USE xffl_status submit_chain(const pipe_submit_options *o, const char *tdir, const char *log_dir,
                                pipe_submit_job_fn on_job, void *ctx, pipe_submit_result *res)
{
    char (*pool)[ARG_MAX_LEN] = malloc(MAX_ARGS * sizeof *pool);
    XFFL_RETURN_IF(!pool, XFFL_ERR_NOMEM, "sbatch command lines");
    char *args[MAX_ARGS];
    char prev[32] = "", jobid[32], key[PATH_MAX], keys_dir[PATH_MAX];
    xffl_status st = absolute_keys(o, key, keys_dir);
    if (st != XFFL_OK) {
        free(pool);
        return refuse(res, st);
    }
    if (o->after) snprintf(prev, sizeof prev, "%s", o->after);
    const long per = o->rounds_per_job > 1 ? o->rounds_per_job : 1;
    res->jobs = (o->rounds + per - 1) / per;
    for (long k = 0; k < o->rounds; k += per) {
        long round = res->first_round + k, count = o->rounds - k < per ? o->rounds - k : per;
        int n = build_argv(o, tdir, log_dir, key, keys_dir, round, count, prev[0] ? prev : NULL, args, pool);
        if (n < 0) {
            st = refuse(res, xffl_fail(XFFL_ERR_UNSUPPORTED, "sbatch command line too long"));
            break;
        }
        pipe_submit_job job = {.round = round, .rounds = count, .name = args[3] + strlen("--job-name="), .after = prev[0] ? prev : NULL,
                               .argv = args, .argc = n};
        if (o->dry_run) {
            if (on_job) on_job(ctx, &job);
            snprintf(prev, sizeof prev, "<job of round %ld>", round);
            continue;
        }
        if ((st = run_sbatch(args, jobid, sizeof jobid)) != XFFL_OK) {
            res->failed_round = round;
            st = refuse(res, st);
            break;
        }
        res->submitted++;
        snprintf(res->last_job, sizeof res->last_job, "%s", jobid);
        job.job_id = jobid;
        if (on_job) on_job(ctx, &job);
        snprintf(prev, sizeof prev, "%s", jobid);
    }
    free(pool);
    return st;
}

xffl_status pipe_submit(store *s, const pipe_submit_options *o, pipe_submit_job_fn on_job, void *ctx,
                        pipe_submit_result *res)
{
    *res = (pipe_submit_result){.first_round = o->first_round};
    char self[PATH_MAX], tdir[PATH_MAX], log_dir[PATH_MAX];
    ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
    if (sl <= 0)
        return refuse(res, xffl_fail(XFFL_ERR_IO, "cannot find my own binary: /proc/self/exe: %s", strerror(errno)));
    self[sl] = 0;
    xffl_status st = find_templates(o->templates, self, tdir, sizeof tdir);
    if (st == XFFL_OK && o->credentials) st = check_secret("credentials file", o->credentials);
    if (st == XFFL_OK && o->key_file) st = check_secret("private key file", o->key_file);
    if (st != XFFL_OK) return refuse(res, st);
    if (!res->first_round) {
        pipe_version_ref ref;
        st = pipe_latest_read(s, &ref);
        if (st == XFFL_ERR_NOT_FOUND)
            return refuse(res, xffl_fail(st, "%s has no LATEST (run xffl init first, or give --first-round)",
                                         o->store_url));
        XFFL_FORWARD(st);
        res->first_round = (long)ref.version + 1;
    }
    if (!o->dry_run) XFFL_FORWARD(xffl_mkdirs(o->log_dir));
    absolute_log_dir(o->log_dir, o->dry_run, log_dir, sizeof log_dir);
    if ((st = export_env(o, self, tdir, log_dir)) != XFFL_OK) return refuse(res, st);
    if (o->dry_run) {
        const char *hook = getenv("XFFL_ENV_HOOK");
        xffl_log(XFFL_LOG_INFO,
               "dry run; jobs would run with XFFL_BIN=%s XFFL_STEP=%s/xffl-step XFFL_LOG_DIR=%s "
               "XFFL_REQUEUE_DELAY=%ld XFFL_DEADLINE=%ld%s%s",
               self, tdir, log_dir, o->delay, o->deadline, hook ? " XFFL_ENV_HOOK=" : "", hook ? hook : "");
    }
    return submit_chain(o, tdir, log_dir, on_job, ctx, res);
}
