/* `xffl train --ranks N` (pipelines/ranks.h): exec mpirun on ourselves. */
#include "pipelines/ranks.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm/comm.h"
#include "common/log.h"
#include "common/util.h"

/* This process's own command line as it was started (main reorders argv's pointers to
 * strip the global flags, not the strings /proc/self/cmdline shows): *argv[0..*argc). */
static XFFL_MUST_USE xffl_status own_cmdline(char **buf, char ***argv, int *argc)
{
    size_t len = 0;
    void *data;
    XFFL_FORWARD(xffl_read_file("/proc/self/cmdline", &data, &len));
    *buf = data;
    int n = 0;
    for (size_t i = 0; i < len; i++) n += (*buf)[i] == '\0';
    *argv = calloc((size_t)n + 1, sizeof **argv);
    if (!*argv) {
        free(*buf);
        return xffl_fail(XFFL_ERR_NOMEM, "--ranks: my command line");
    }
    *argc = 0;
    for (size_t i = 0; i < len; i += strlen(*buf + i) + 1) (*argv)[(*argc)++] = *buf + i;
    return XFFL_OK;
}

xffl_status pipe_ranks_launch(int n)
{
    /* A launcher's single task (srun -n 1 in a batch script) may still start N ranks. */
    int started = comm_launcher_ranks();
    if (started > 1) {
        XFFL_RETURN_IF(n > 1 && started != n, XFFL_ERR_USAGE,
                       "--ranks %d, but the launcher started %d ranks (leave --ranks out under srun/mpirun)", n,
                       started);
        return XFFL_OK;
    }
    if (n <= 1) return XFFL_OK;
    char self[4096];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    XFFL_RETURN_IF(len <= 0, XFFL_ERR_IO, "--ranks: cannot find my own binary: /proc/self/exe: %s", strerror(errno));
    self[len] = '\0';
    char *line = NULL, **argv = NULL;
    int argc = 0;
    XFFL_FORWARD(own_cmdline(&line, &argv, &argc));
    const char *mpirun = getenv("XFFL_MPIRUN") && *getenv("XFFL_MPIRUN") ? getenv("XFFL_MPIRUN") : "mpirun";
    char np[16];
    snprintf(np, sizeof np, "%d", n);
    /* -q: no help banners (a rank's own error is the message); --oversubscribe: more ranks
     * than cores is allowed (tests, a laptop); --bind-to none: a rank's OpenMP threads are
     * not pinned to one core. */
    const char *fixed[] = {mpirun, "-q", "--oversubscribe", "--bind-to", "none", "-np", np};
    enum { NFIXED = sizeof fixed / sizeof fixed[0] };
    char **args = calloc((size_t)argc + NFIXED + 3, sizeof *args);
    if (!args) {
        free(argv);
        free(line);
        return xffl_fail(XFFL_ERR_NOMEM, "--ranks: mpirun arguments");
    }
    int k = 0;
    for (int i = 0; i < NFIXED; i++) args[k++] = (char *)fixed[i];
    if (geteuid() == 0) args[k++] = "--allow-run-as-root";
    args[k++] = self;
    for (int i = 1; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    xffl_log(XFFL_LOG_DEBUG, "--ranks %d: exec %s -np %d %s ...", n, mpirun, n, self);
    execvp(mpirun, args);
    int e = errno;
    free(args);
    free(argv);
    free(line);
    return xffl_fail(XFFL_ERR_UNSUPPORTED, "--ranks %d: cannot run %s (%s): install openmpi-bin (scripts/install-deps)",
                     n, mpirun, strerror(e));
}
