/* pipe_simulate (contract in simulate.h). */
#include "pipelines/simulate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "common/log.h"
#include "common/util.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

/* pat with every {facility} replaced by fac (malloc'd; NULL when out of memory). */
static char *subst(const char *pat, const char *fac)
{
    size_t n = strlen(pat) + 1;
    for (const char *p = strstr(pat, "{facility}"); p; p = strstr(p + 1, "{facility}")) n += strlen(fac);
    size_t fl = strlen(fac);
    char *out = malloc(n), *o = out;
    if (!out) return NULL;
    while (*pat) {
        if (!strncmp(pat, "{facility}", 10)) {
            memcpy(o, fac, fl);
            o += fl;
            pat += 10;
        } else
            *o++ = *pat++;
    }
    *o = 0;
    return out;
}

/* Runs this binary with argv (argv[0] "xffl") as a child process. */
static pid_t spawn(char *const *argv)
{
    pid_t p = fork();
    if (p == 0) {
        execv("/proc/self/exe", argv);
        xffl_log(XFFL_LOG_ERROR, "cannot run %s: %s", argv[0], strerror(errno));
        _exit(127);
    }
    return p;
}

static int wait_rc(pid_t p)
{
    int status = 0;
    while (waitpid(p, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
}

/* 'xffl init' for a store without a federation: 0, or its exit code. */
static int run_init(const pipe_simulate_options *o)
{
    /* N → f1..fN */
    char names[2048];
    long nf = 0;
    if (xffl_parse_long("--facilities", o->facilities, 1, PIPE_MAX_FACILITIES, &nf) == XFFL_OK) {
        names[0] = 0;
        for (long k = 1; k <= nf; k++) snprintf(names + strlen(names), sizeof names - strlen(names), "%sf%ld", k > 1 ? "," : "", k);
    } else
        snprintf(names, sizeof names, "%s", o->facilities);
    xffl_errmsg_clear();
    char **iargv = calloc((size_t)o->n_init_args + 8, sizeof *iargv);
    if (!iargv) return 127;
    int k = 0;
    iargv[k++] = "xffl";
    iargv[k++] = "init";
    iargv[k++] = "--store";
    iargv[k++] = (char *)o->store_url;
    iargv[k++] = "--facilities";
    iargv[k++] = names;
    for (int i = 0; i < o->n_init_args; i++) iargv[k++] = o->init_args[i];
    xffl_log(XFFL_LOG_INFO, "init %s", o->store_url);
    int rc = wait_rc(spawn(iargv));
    free(iargv);
    return rc;
}

/* Every facility's train for round, concurrently: 1 when one failed (each named). */
static int run_trains(const pipe_simulate_options *o, const pipe_federation *f, long round, const char *rtxt,
                      const char *thr)
{
    pid_t pids[PIPE_MAX_FACILITIES];
    char *allocs[2 * PIPE_MAX_FACILITIES];
    int na = 0;
    for (int i = 0; i < f->n_facilities; i++) {
        char *d = subst(o->data, f->facilities[i]), *sd = o->state ? subst(o->state, f->facilities[i]) : NULL;
        allocs[na++] = d;
        if (sd) allocs[na++] = sd;
        char *targv[] = {"xffl", "train", "--store", (char *)o->store_url, "--facility", (char *)f->facilities[i],
                         "--data", d, "--round", (char *)rtxt, "--threads", (char *)thr, sd ? "--state" : NULL, sd,
                         NULL};
        pids[i] = spawn(targv);
    }
    int bad = 0;
    for (int i = 0; i < f->n_facilities; i++) {
        int trc = wait_rc(pids[i]);
        if (trc) {
            xffl_log(XFFL_LOG_INFO, "train of %s for round %ld exited %d", f->facilities[i], round, trc);
            bad = 1;
        }
    }
    for (int i = 0; i < na; i++) free(allocs[i]);
    return bad;
}

xffl_status pipe_simulate(store *s, const pipe_simulate_options *o, pipe_simulate_round_fn on_round, void *ctx,
                          pipe_simulate_result *res)
{
    *res = (pipe_simulate_result){0};
    pipe_federation f;
    xffl_status st = pipe_federation_load_latest(s, NULL, &f, NULL);
    if (st == XFFL_ERR_NOT_FOUND) {
        int rc = run_init(o);
        if (rc) {
            xffl_log(XFFL_LOG_INFO, "init exited %d", rc);
            res->failed = 1;
            return XFFL_OK;
        }
        st = pipe_federation_load_latest(s, NULL, &f, NULL);
    }
    XFFL_FORWARD(st);
    long threads = o->threads;
    if (!threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores / f.n_facilities > 0 ? cores / f.n_facilities : 1;
    }
    char thr[24];
    snprintf(thr, sizeof thr, "%ld", threads);
    for (;;) {
        pipe_version_ref ref;
        XFFL_FORWARD(pipe_latest_read(s, &ref));
        if (ref.version >= o->rounds) return XFFL_OK;
        long round = (long)ref.version + 1;
        char rtxt[24];
        snprintf(rtxt, sizeof rtxt, "%ld", round);
        double t0 = xffl_now();
        int bad = run_trains(o, &f, round, rtxt, thr);
        char *aargv[] = {"xffl", "aggregate", "--store", (char *)o->store_url, "--round", rtxt, "--deadline",
                         (char *)o->deadline, NULL};
        int arc = bad ? 0 : wait_rc(spawn(aargv));
        if (bad || arc) {
            if (arc) xffl_log(XFFL_LOG_INFO, "aggregate for round %ld exited %d", round, arc);
            res->failed = 1;
            return XFFL_OK;
        }
        res->rounds_done++;
        if (on_round) on_round(ctx, round, xffl_now() - t0);
    }
}
