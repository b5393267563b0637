/* xffl simulate: a whole federation on one machine, every job its own process. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "common/util.h"
#include "pipelines/federation.h"
#include "pipelines/version.h"

static const char *help =
    "usage: xffl simulate --store URL --facilities a,b|N --rounds R --data PATTERN\n"
    "                     [--state PATTERN] [--threads N] [--deadline SECS] [-- INIT-FLAGS...]\n"
    "\n"
    "Runs a whole federation locally: 'xffl init' (with INIT-FLAGS, when the store has\n"
    "no federation yet), then for each round up to R every facility's 'xffl train' as\n"
    "its own concurrent process, then 'xffl aggregate'. Rounds already done are\n"
    "skipped, so running it again resumes. In PATTERN, {facility} is replaced by the\n"
    "facility's name.\n"
    "\n"
    "  --store URL        s3://bucket/prefix, file:///path or a plain path\n"
    "  --facilities a,b   facility names, or N for f1..fN (passed to init)\n"
    "  --rounds R         run until version R exists\n"
    "  --data PATTERN     each facility's shards, e.g. 'data/{facility}/*_train_*.bin'\n"
    "  --state PATTERN    each facility's --state DIR (e.g. 'state/{facility}')\n"
    "  --threads N        cpu threads per train process (default: cores / facilities)\n"
    "  --deadline SECS    aggregate's --deadline (default 60)\n"
    "  -- INIT-FLAGS      flags for 'xffl init' (e.g. -- --model tiny --algo diloco)\n"
    "\n"
    "stdout: one line per round (--json: one object per round) with the version made.\n"
    "exit codes: 0 done, 1 a job failed (its exit code is named), 2 usage.\n";

static char *subst(const char *pat, const char *fac)
{
    size_t n = strlen(pat) + 1;
    for (const char *p = strstr(pat, "{facility}"); p; p = strstr(p + 1, "{facility}")) n += strlen(fac);
    char *out = malloc(n), *o = out;
    if (!out) return NULL;
    while (*pat) {
        if (!strncmp(pat, "{facility}", 10)) {
            o += sprintf(o, "%s", fac);
            pat += 10;
        } else
            *o++ = *pat++;
    }
    *o = 0;
    return out;
}

static pid_t spawn(char *const *argv)
{
    pid_t p = fork();
    if (p == 0) {
        execv("/proc/self/exe", argv);
        fprintf(stderr, "xffl simulate: cannot run %s: %s\n", argv[0], strerror(errno));
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

int cmd_simulate(int argc, char **argv)
{
    const char *cmd = "simulate";
    if (cli_wants_help(argc, argv)) {
        fputs(help, stdout);
        return 0;
    }
    const char *url = NULL, *facs = NULL, *data = NULL, *state = NULL, *deadline = "60";
    long rounds = 0, threads = 0;
    const cli_opt opts[] = {{"--store", CLI_STR, &url, 0, 0, NULL},
                            {"--facilities", CLI_STR, &facs, 0, 0, NULL},
                            {"--data", CLI_STR, &data, 0, 0, NULL},
                            {"--state", CLI_STR, &state, 0, 0, NULL},
                            {"--deadline", CLI_STR, &deadline, 0, 0, NULL},
                            {"--rounds", CLI_LONG, &rounds, 1, 999999, NULL},
                            {"--threads", CLI_LONG, &threads, 1, 1024, NULL},
                            {0}};
    cli_args args = {.dashdash = 1};
    int rc = cli_parse(cmd, argc, argv, opts, NULL, &args);
    if (rc) return rc;
    int init_from = args.rest;
    if (!url || !facs || !rounds || !data)
        return cli_usage_error(cmd, "--store, --facilities, --rounds and --data are required");
    /* N → f1..fN */
    char names[2048];
    long nf = 0;
    if (xffl_parse_long("--facilities", facs, 1, PIPE_MAX_FACILITIES, &nf) == XFFL_OK) {
        names[0] = 0;
        for (long k = 1; k <= nf; k++) snprintf(names + strlen(names), sizeof names - strlen(names), "%sf%ld", k > 1 ? "," : "", k);
    } else
        snprintf(names, sizeof names, "%s", facs);
    xffl_errmsg_clear();
    store *s = NULL;
    xffl_status st = store_open(url, NULL, &s);
    if (st != XFFL_OK) return cli_report(cmd, st);
    pipe_federation f;
    st = pipe_federation_load(s, NULL, &f, NULL);
    if (st == XFFL_ERR_NOT_FOUND) {
        char **iargv = calloc((size_t)(argc - init_from) + 8, sizeof *iargv);
        int k = 0;
        iargv[k++] = "xffl";
        iargv[k++] = "init";
        iargv[k++] = "--store";
        iargv[k++] = (char *)url;
        iargv[k++] = "--facilities";
        iargv[k++] = names;
        for (int i = init_from; i < argc; i++) iargv[k++] = argv[i];
        fprintf(stderr, "xffl simulate: init %s\n", url);
        int rc = wait_rc(spawn(iargv));
        free(iargv);
        if (rc) {
            store_close(s);
            fprintf(stderr, "xffl simulate: init exited %d\n", rc);
            return 1;
        }
        st = pipe_federation_load(s, NULL, &f, NULL);
    }
    if (st != XFFL_OK) {
        store_close(s);
        return cli_report(cmd, st);
    }
    if (!threads) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        threads = cores / f.n_facilities > 0 ? cores / f.n_facilities : 1;
    }
    char thr[16];
    snprintf(thr, sizeof thr, "%ld", threads);
    rc = 0;
    for (;;) {
        pipe_version_ref ref;
        if ((st = pipe_latest_read(s, &ref)) != XFFL_OK) {
            rc = cli_report(cmd, st);
            break;
        }
        if (ref.version >= rounds) break;
        long round = (long)ref.version + 1;
        char rtxt[24];
        snprintf(rtxt, sizeof rtxt, "%ld", round);
        double t0 = xffl_now();
        pid_t pids[PIPE_MAX_FACILITIES];
        char *allocs[2 * PIPE_MAX_FACILITIES];
        int na = 0;
        for (int i = 0; i < f.n_facilities; i++) {
            char *d = subst(data, f.facilities[i]), *sd = state ? subst(state, f.facilities[i]) : NULL;
            allocs[na++] = d;
            if (sd) allocs[na++] = sd;
            char *targv[20];
            int k = 0;
            targv[k++] = "xffl";
            targv[k++] = "train";
            targv[k++] = "--store";
            targv[k++] = (char *)url;
            targv[k++] = "--facility";
            targv[k++] = f.facilities[i];
            targv[k++] = "--data";
            targv[k++] = d;
            targv[k++] = "--round";
            targv[k++] = rtxt;
            targv[k++] = "--threads";
            targv[k++] = thr;
            if (sd) {
                targv[k++] = "--state";
                targv[k++] = sd;
            }
            targv[k] = NULL;
            pids[i] = spawn(targv);
        }
        int bad = 0;
        for (int i = 0; i < f.n_facilities; i++) {
            int trc = wait_rc(pids[i]);
            if (trc) {
                fprintf(stderr, "xffl simulate: train of %s for round %ld exited %d\n", f.facilities[i], round, trc);
                bad = 1;
            }
        }
        for (int i = 0; i < na; i++) free(allocs[i]);
        char *aargv[] = {"xffl", "aggregate", "--store", (char *)url, "--round", rtxt, "--deadline", (char *)deadline,
                         NULL};
        int arc = bad ? 0 : wait_rc(spawn(aargv));
        if (bad || arc) {
            if (arc) fprintf(stderr, "xffl simulate: aggregate for round %ld exited %d\n", round, arc);
            rc = 1;
            break;
        }
        if (cli_json)
            printf("{\"round\": %ld, \"version\": %ld, \"seconds\": %.3f}\n", round, round, xffl_now() - t0);
        else
            printf("round %ld: v%06ld in %.1fs\n", round, round, xffl_now() - t0);
        fflush(stdout);
    }
    store_close(s);
    return rc;
}
