/* Wall-clock split of the cpu backend's step by op, for profiling builds only:
 * `make BUILD=build-prof EXTRA_CFLAGS=-DXFFL_OPPROF`; the backend prints the table to
 * stderr when it is destroyed. Without XFFL_OPPROF, KPROF(name, stmt) is stmt. Every
 * timed statement runs outside a parallel region, so wall time is the op's time. */
#ifndef XFFL_KCPU_PROF_H
#define XFFL_KCPU_PROF_H
#ifdef XFFL_OPPROF
#include "common/util.h"
void kcpu_prof_add(const char *name, double s);
void kcpu_prof_print(void);
#define KPROF(name, stmt)                         \
    do {                                          \
        double kprof_t0_ = xffl_now();            \
        stmt;                                     \
        kcpu_prof_add(name, xffl_now() - kprof_t0_); \
    } while (0)
#define KPROF_BEGIN(v) double v = xffl_now()
#define KPROF_END(name, v) kcpu_prof_add(name, xffl_now() - (v))
#else
#define KPROF_BEGIN(v) ((void)0)
#define KPROF_END(name, v) ((void)0)
#define KPROF(name, stmt) \
    do {                  \
        stmt;             \
    } while (0)
#endif
#endif
