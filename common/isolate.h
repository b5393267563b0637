/* Running a parser of untrusted bytes in a child process (docs/design.md "HDF5 files"):
 * Debian's libhdf5 1.10 crashes on some crafted files, and a facility can send one.
 * A crash in the child is a CORRUPT status naming what was parsed, never a dead
 * aggregator, and a parser that never ends is one too. The child shares nothing with the caller but what fn returns: a status,
 * its message and up to XFFL_ISOLATE_RESULT_MAX bytes of result. */
#ifndef XFFL_ISOLATE_H
#define XFFL_ISOLATE_H

#include <stddef.h>
#include "common/status.h"

#define XFFL_ISOLATE_RESULT_MAX 4096

/* Runs fn(ctx) in a forked child; its status and message become this call's. result
 * (result_size bytes, may be NULL) is what fn left there in the child, copied back when
 * fn succeeded. The child must not use OpenMP with more than one thread (libgomp's pool
 * does not survive fork). what names the input in a crash's message. A child still
 * running after seconds (libhdf5 loops forever on some chunk indexes) is killed: CORRUPT. */
XFFL_MUST_USE xffl_status xffl_isolated(xffl_status (*fn)(void *ctx), void *ctx, void *result, size_t result_size,
                                        unsigned seconds, const char *what);

#endif
