/* See isolate.h. */
#include "common/isolate.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

typedef struct {
    int32_t status;
    char msg[XFFL_ERRMSG_MAX];
    unsigned char result[XFFL_ISOLATE_RESULT_MAX];
} reply;

static int write_all(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) return -1;
        c += w, n -= (size_t)w;
    }
    return 0;
}

static size_t read_all(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, (char *)p + got, n - got);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

xffl_status xffl_isolated(xffl_status (*fn)(void *ctx), void *ctx, void *result, size_t result_size, unsigned seconds,
                          const char *what)
{
    XFFL_RETURN_IF(result_size > XFFL_ISOLATE_RESULT_MAX, XFFL_ERR_INTERNAL, "%s: result of %zu bytes", what,
                   result_size);
    int fd[2];
    XFFL_RETURN_IF(pipe(fd) != 0, XFFL_ERR_IO, "%s: pipe: %s", what, strerror(errno));
    fflush(NULL); /* nothing buffered here is written twice */
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fd[0]);
        close(fd[1]);
        return xffl_fail(XFFL_ERR_NOMEM, "%s: fork: %s", what, strerror(e));
    }
    if (pid == 0) {
        close(fd[0]);
        static reply rep;
        alarm(seconds);
        xffl_errmsg_clear();
        rep.status = (int32_t)fn(ctx);
        snprintf(rep.msg, sizeof rep.msg, "%s", xffl_errmsg());
        if (rep.status == XFFL_OK && result_size) memcpy(rep.result, result, result_size);
        _exit(write_all(fd[1], &rep, sizeof rep) == 0 ? 0 : 1);
    }
    close(fd[1]);
    static _Thread_local reply rep;
    size_t got = read_all(fd[0], &rep, sizeof rep);
    close(fd[0]);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
    }
    if (WIFSIGNALED(ws) && WTERMSIG(ws) == SIGALRM)
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: its parser did not finish in %u s: damaged or crafted input", what,
                         seconds);
    if (WIFSIGNALED(ws))
        return xffl_fail(XFFL_ERR_CORRUPT, "%s: its parser crashed (signal %d, %s): damaged or crafted input", what,
                         WTERMSIG(ws), strsignal(WTERMSIG(ws)));
    XFFL_RETURN_IF(got != sizeof rep || !WIFEXITED(ws) || WEXITSTATUS(ws) != 0, XFFL_ERR_CORRUPT,
                   "%s: its parser died (exit %d): damaged or crafted input", what,
                   WIFEXITED(ws) ? WEXITSTATUS(ws) : -1);
    XFFL_RETURN_IF(rep.status < 0 || rep.status >= XFFL_STATUS_COUNT, XFFL_ERR_INTERNAL, "%s: child status %d", what,
                   (int)rep.status);
    if (rep.status != XFFL_OK) return xffl_fail((xffl_status)rep.status, "%s", rep.msg);
    if (result_size) memcpy(result, rep.result, result_size);
    return XFFL_OK;
}
