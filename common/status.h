/* One status type for the whole code base (docs/design.md "Code layout").
 *
 * Every fallible function returns an xffl_status. Alongside it, a thread-local
 * message names the object, file, key or tensor that failed; set it with
 * xffl_fail() at the point of failure and read it with xffl_errmsg() at the top
 * (cmd/), which is the only place that prints. Worker threads that fail must hand
 * their message to the joining thread (xffl_errmsg_copy / xffl_fail with "%s"). */
#ifndef XFFL_STATUS_H
#define XFFL_STATUS_H

#include <stddef.h>

typedef enum {
    XFFL_OK = 0,
    XFFL_ERR_USAGE = 1,       /* bad argument or option                         -> exit 2  */
    XFFL_ERR_IO = 2,          /* local file system failure                       -> exit 1  */
    XFFL_ERR_NOMEM = 3,       /* allocation failed                               -> exit 1  */
    XFFL_ERR_NOT_FOUND = 4,   /* file, key or tensor absent                      -> exit 1  */
    XFFL_ERR_EXISTS = 5,      /* write-once key already holds other bytes        -> exit 1  */
    XFFL_ERR_CORRUPT = 6,     /* digest mismatch, truncated or undecodable data  -> exit 65 */
    XFFL_ERR_INVALID = 7,     /* well-formed but wrong: format, shape, NaN, vocab -> exit 65 */
    XFFL_ERR_UNREACHABLE = 8, /* store could not be reached after retries        -> exit 74 */
    XFFL_ERR_TRANSIENT = 9,   /* one attempt failed in a way worth retrying      -> exit 74 */
    XFFL_ERR_AUTH = 10,       /* credentials rejected                            -> exit 1  */
    XFFL_ERR_NOT_YET = 11,    /* nothing to do yet (quorum, base version)        -> exit 75 */
    XFFL_ERR_HDF5 = 12,       /* HDF5 library call failed                        -> exit 1  */
    XFFL_ERR_BACKEND = 13,    /* compute backend (OpenMP/BLAS/CUDA/NCCL) failure -> exit 1  */
    XFFL_ERR_UNSUPPORTED = 14,/* feature absent in this build or on this machine  -> exit 1  */
    XFFL_ERR_INTERNAL = 15,   /* a bug                                           -> exit 1  */
    XFFL_ERR_TLS = 16,        /* a server's TLS certificate did not verify       -> exit 1  */
    XFFL_STATUS_COUNT
} xffl_status;

/* Stable lowercase name of a status, e.g. "corrupt data". Never NULL. */
const char *xffl_strerror(xffl_status s);
/* 1 when retrying the same operation may succeed (transient network faults). */
int xffl_is_retryable(xffl_status s);
/* Process exit code for a status (docs/design.md "Exit codes"). */
int xffl_exit_code(xffl_status s);

/* Record a failure: formats the message into this thread's buffer, returns s. */
xffl_status xffl_fail(xffl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prefix the current message with more context ("reading v000003: <old>"), returns s. */
xffl_status xffl_wrap(xffl_status s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* This thread's last message ("" if none). Valid until the next xffl_fail on this thread. */
const char *xffl_errmsg(void);
void xffl_errmsg_clear(void);

#define XFFL_ERRMSG_MAX 1024

/* On every function that returns an xffl_status: a caller that drops the status fails
 * the build (-Werror). GCC ignores a (void) cast here, so a deliberate ignore (best-
 * effort cleanup whose failure changes nothing) goes through xffl_ignore(), which
 * says so by name at the call site. */
#define XFFL_MUST_USE __attribute__((warn_unused_result))
static inline void xffl_ignore(xffl_status s) { (void)s; }

/* Return s with a message if cond holds. */
#define XFFL_RETURN_IF(cond, s, ...) \
    do { if (cond) return xffl_fail((s), __VA_ARGS__); } while (0)
/* Evaluate expr; if it fails, return its status unchanged (message kept). */
#define XFFL_FORWARD(expr) \
    do { xffl_status xffl_fwd_s_ = (expr); if (xffl_fwd_s_ != XFFL_OK) return xffl_fwd_s_; } while (0)
/* Evaluate expr; on failure store status in var and goto label (for cleanup paths). */
#define XFFL_CHECK_GOTO(var, expr, label) \
    do { (var) = (expr); if ((var) != XFFL_OK) goto label; } while (0)

#endif
