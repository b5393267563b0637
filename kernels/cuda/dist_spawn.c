/* One process per local GPU for `xffl train --gpus N` (kernels/cuda/dist.h). Plain POSIX. */
#include "kernels/cuda/dist.h"

#include <errno.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* environ minus any XFFL_RANK/WORLD/LOCAL_RANK/DIST_TAG, plus this rank's four. */
static char **rank_env(int rank, int n, const char *tag, char vars[4][192])
{
    size_t count = 0;
    while (environ[count]) count++;
    char **env = calloc(count + 5, sizeof *env);
    if (!env) return NULL;
    size_t k = 0;
    for (size_t i = 0; i < count; i++) {
        const char *e = environ[i];
        if (!strncmp(e, "XFFL_RANK=", 10) || !strncmp(e, "XFFL_WORLD=", 11) || !strncmp(e, "XFFL_LOCAL_RANK=", 16) ||
            !strncmp(e, "XFFL_DIST_TAG=", 14))
            continue;
        env[k++] = (char *)e;
    }
    snprintf(vars[0], 192, "XFFL_RANK=%d", rank);
    snprintf(vars[1], 192, "XFFL_WORLD=%d", n);
    snprintf(vars[2], 192, "XFFL_LOCAL_RANK=%d", rank);
    snprintf(vars[3], 192, "XFFL_DIST_TAG=%s", tag);
    for (int i = 0; i < 4; i++) env[k++] = vars[i];
    env[k] = NULL;
    return env;
}

static int status_code(int st) { return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0); }

xffl_status kern_dist_spawn_local(int n, char *const argv[], int *exit_code)
{
    *exit_code = 1;
    XFFL_RETURN_IF(n < 1 || n > 1024, XFFL_ERR_USAGE, "--gpus %d: expected 1 to 1024", n);
    XFFL_RETURN_IF(!argv || !argv[0], XFFL_ERR_USAGE, "no command to run on each GPU");
    char tag[KERN_DIST_TAG_MAX];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(tag, sizeof tag, "gpus-%ld-%lld-%ld", (long)getpid(), (long long)now.tv_sec, (long)(now.tv_nsec / 1000));
    pid_t *pids = calloc((size_t)n, sizeof *pids);
    int *codes = calloc((size_t)n, sizeof *codes);
    if (!pids || !codes) {
        free(pids), free(codes);
        return xffl_fail(XFFL_ERR_NOMEM, "spawning %d ranks", n);
    }
    xffl_status s = XFFL_OK;
    int started = 0;
    for (int r = 0; r < n; r++) {
        char vars[4][192];
        char **env = rank_env(r, n, tag, vars);
        if (!env) {
            s = xffl_fail(XFFL_ERR_NOMEM, "environment of rank %d", r);
            break;
        }
        int e = posix_spawn(&pids[r], argv[0], NULL, NULL, argv, env);
        free(env);
        if (e) {
            s = xffl_fail(XFFL_ERR_BACKEND, "starting rank %d (%s): %s", r, argv[0], strerror(e));
            break;
        }
        started++;
    }
    int failed_rank = -1, live = started;
    if (s != XFFL_OK)
        for (int r = 0; r < started; r++) kill(pids[r], SIGTERM);
    while (live > 0) {
        int st = 0;
        pid_t p = waitpid(-1, &st, 0);
        if (p < 0) {
            if (errno == EINTR) continue;
            break;
        }
        for (int r = 0; r < started; r++) {
            if (pids[r] != p) continue;
            pids[r] = 0;
            live--;
            codes[r] = status_code(st);
            if (codes[r] != 0 && failed_rank < 0) {
                failed_rank = r;
                for (int o = 0; o < started; o++)
                    if (pids[o] > 0) kill(pids[o], SIGTERM); /* they would block in NCCL */
            }
        }
    }
    if (s == XFFL_OK) {
        *exit_code = failed_rank >= 0 ? codes[failed_rank] : codes[0];
        if (failed_rank >= 0)
            s = xffl_fail(XFFL_ERR_BACKEND, "rank %d of %d exited with status %d; the other ranks were stopped",
                          failed_rank, n, codes[failed_rank]);
    }
    free(pids);
    free(codes);
    return s;
}
