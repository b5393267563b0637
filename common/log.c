#include "common/log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static xffl_log_config cfg = {.level = XFFL_LOG_INFO, .json = 0, .cmd = NULL, .stream = NULL};
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

xffl_log_config xffl_log_setup(const xffl_log_config *c)
{
    xffl_log_config was = cfg;
    cfg = *c;
    return was;
}

int xffl_log_enabled(xffl_log_level level) { return level <= cfg.level; }

/* s as the body of a JSON string (quotes, backslashes and control bytes escaped). */
static void put_json_str(FILE *f, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') fprintf(f, "\\%c", c);
        else if (c == '\n') fputs("\\n", f);
        else if (c < 0x20) fprintf(f, "\\u%04x", c);
        else fputc(c, f);
    }
}

void xffl_log(xffl_log_level level, const char *fmt, ...)
{
    if (!xffl_log_enabled(level)) return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') msg[--n] = 0;
    pthread_mutex_lock(&lock);
    FILE *f = cfg.stream ? cfg.stream : stderr;
    if (cfg.json) {
        fprintf(f, "{\"level\": \"%s\", \"cmd\": \"", level_names[level]);
        put_json_str(f, cfg.cmd ? cfg.cmd : "");
        fputs("\", \"msg\": \"", f);
        put_json_str(f, msg);
        /* UTC to the millisecond: a job's lines beside its scheduler's and the store's */
        struct timespec ts;
        struct tm tm;
        clock_gettime(CLOCK_REALTIME, &ts);
        gmtime_r(&ts.tv_sec, &tm);
        fprintf(f, "\", \"time\": \"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"}\n", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    } else if (cfg.cmd) {
        fprintf(f, "xffl %s: %s\n", cfg.cmd, msg);
    } else {
        fprintf(f, "xffl: %s\n", msg);
    }
    fflush(f);
    pthread_mutex_unlock(&lock);
}
