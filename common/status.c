#include "common/status.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static _Thread_local char errmsg[XFFL_ERRMSG_MAX];

static const struct {
    const char *name;
    int exit_code;
    int retryable;
} status_table[XFFL_STATUS_COUNT] = {
    [XFFL_OK] = {"ok", 0, 0},
    [XFFL_ERR_USAGE] = {"usage error", 2, 0},
    [XFFL_ERR_IO] = {"i/o error", 1, 0},
    [XFFL_ERR_NOMEM] = {"out of memory", 1, 0},
    [XFFL_ERR_NOT_FOUND] = {"not found", 1, 0},
    [XFFL_ERR_EXISTS] = {"already exists", 1, 0},
    [XFFL_ERR_CORRUPT] = {"corrupt data", 65, 0},
    [XFFL_ERR_INVALID] = {"invalid data", 65, 0},
    [XFFL_ERR_UNREACHABLE] = {"store unreachable", 74, 0},
    [XFFL_ERR_TRANSIENT] = {"transient store error", 74, 1},
    [XFFL_ERR_AUTH] = {"credentials rejected", 1, 0},
    [XFFL_ERR_NOT_YET] = {"not yet", 75, 0},
    [XFFL_ERR_HDF5] = {"hdf5 error", 1, 0},
    [XFFL_ERR_BACKEND] = {"compute backend error", 1, 0},
    [XFFL_ERR_UNSUPPORTED] = {"unsupported", 1, 0},
    [XFFL_ERR_INTERNAL] = {"internal error", 1, 0},
    [XFFL_ERR_TLS] = {"certificate not verified", 1, 0},
};

static int known(xffl_status s) { return (int)s >= 0 && s < XFFL_STATUS_COUNT; }

const char *xffl_strerror(xffl_status s) { return known(s) ? status_table[s].name : "unknown status"; }
int xffl_is_retryable(xffl_status s) { return known(s) && status_table[s].retryable; }
int xffl_exit_code(xffl_status s) { return known(s) ? status_table[s].exit_code : 1; }

xffl_status xffl_fail(xffl_status s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    va_end(ap);
    return s;
}

xffl_status xffl_wrap(xffl_status s, const char *fmt, ...)
{
    char prefix[XFFL_ERRMSG_MAX], old[XFFL_ERRMSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errmsg, sizeof old);
    /* Truncation is acceptable for messages; build by hand to keep the compiler quiet. */
    size_t n = strlen(prefix);
    memcpy(errmsg, prefix, n + 1);
    if (old[0] && n + 2 < sizeof errmsg) {
        memcpy(errmsg + n, ": ", 3);
        strncat(errmsg, old, sizeof errmsg - n - 3);
    }
    return s;
}

const char *xffl_errmsg(void) { return errmsg; }
void xffl_errmsg_clear(void) { errmsg[0] = 0; }
