/* A minimal test harness for tests/gpu (no CUnit on the GPU machines): each test is a
 * void function; a failed check records a line naming file:line and what differed, a
 * test may SKIP with a reason. main() prints one line per test and "N passed, N failed". */
#ifndef XFFL_GPU_TEST_H
#define XFFL_GPU_TEST_H

#include <stdint.h>
#include <stdio.h>
#include "common/status.h"
#include "libckpt/model.h"

void gt_fail(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void gt_skip(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int gt_failed(void); /* failures recorded in the running test */

#define GT_CHECK(cond, ...)                                          \
    do {                                                             \
        if (!(cond)) gt_fail(__FILE__, __LINE__, __VA_ARGS__);       \
    } while (0)
/* Evaluate an xffl_status expression; on failure record it with xffl_errmsg and return. */
#define GT_OK(expr)                                                                              \
    do {                                                                                         \
        xffl_status gt_s_ = (expr);                                                              \
        if (gt_s_ != XFFL_OK) {                                                                  \
            gt_fail(__FILE__, __LINE__, "%s: %s (%s)", #expr, xffl_errmsg(), xffl_strerror(gt_s_)); \
            return;                                                                              \
        }                                                                                        \
    } while (0)

/* max |a-b| / max(max |b|, 1e-30): the relative error the tolerances below refer to. */
double gt_rel_err(const float *a, const float *b, int64_t n);
double gt_rel_err_d(const float *a, const double *b, int64_t n);
/* Deterministic uniform floats in [lo, hi) and token ids in [0, V). */
void gt_fill(float *x, int64_t n, uint64_t seed, float lo, float hi);
void gt_tokens(int32_t *x, int64_t n, uint64_t seed, int V);
/* A parameter slab initialised like `xffl init` (ckpt_param_init, seed). Caller frees. */
float *gt_init_params(const ckpt_param_table *t, uint64_t seed);
/* Deterministic training text as byte tokens: B*T inputs and next-byte targets of batch i. */
void gt_text_batch(int i, int B, int T, int32_t *inputs, int32_t *targets);

#endif
