/* One log sink for the whole code base: progress, retries, warnings and debug lines.
 *
 * Libraries never print: they call xffl_log(), and this module is the one writer
 * outside cmd/. The binary sets it up once (cmd/xffl.c, from --verbose, --quiet and
 * --json); until then it writes INFO and above as "xffl: <message>" to stderr.
 * Lines go to stderr, one per call (a trailing newline in fmt is optional), so a
 * command's stdout stays its result. Thread-safe: each line is written whole. */
#ifndef XFFL_LOG_H
#define XFFL_LOG_H

#include <stdio.h>

typedef enum {
    XFFL_LOG_ERROR = 0, /* something failed; the status carries the details          */
    XFFL_LOG_WARN = 1,  /* kept going, but the user should know (an orphan) (--quiet)  */
    XFFL_LOG_INFO = 2,  /* progress of long work (default threshold)                   */
    XFFL_LOG_DEBUG = 3, /* --verbose: each retry and refetch, HDF5 error stacks        */
} xffl_log_level;

typedef struct {
    xffl_log_level level; /* lines above this level are dropped (INFO) */
    int json;             /* 1: one JSON object per line {"level","cmd","msg","time"}, time
                           * as 2026-12-03T16:33:01.123Z (UTC) */
    const char *cmd;      /* "train": the prefix "xffl train: "; NULL: "xffl: " */
    FILE *stream;         /* NULL: stderr (a test captures lines in a file) */
} xffl_log_config;

/* Sets the sink up; the binary calls it once before any work (not thread-safe).
 * Returns the previous set-up, for a test to put back. */
xffl_log_config xffl_log_setup(const xffl_log_config *c);
/* Whether a line at level would be written (to skip costly formatting). */
int xffl_log_enabled(xffl_log_level level);
/* Writes one line at level. */
void xffl_log(xffl_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
