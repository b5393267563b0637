/* BENCHMARK ONLY: a Byzantine facility for `make bench BENCH=byzantine`.
 *
 * The robust-aggregation bench (bench/byzantine.sh) needs an authorised facility that
 * sends a harmful delta through its own train path (signed like any other), not a
 * file edited in the store afterwards. pipe_bench_attack() is that hook: the train job
 * calls it on the delta (θ_local − θ_v) before encoding. It does nothing unless the
 * environment variable
 *
 *   XFFL_BENCH_ATTACK=KIND[:FACILITY]
 *
 * is set (and FACILITY, when given, is this job's facility). KIND:
 *   negate100   the delta times −100
 *   noise100    Gaussian noise whose L2 norm is 100 × the delta's (seeded from the
 *               round and facility, so a re-run sends the same bytes)
 * Every use is logged as a WARN; an unknown KIND is a usage error, so a typo never
 * trains honestly by surprise. Never set it outside a benchmark or a test. */
#ifndef XFFL_PIPELINES_BENCH_ATTACK_H
#define XFFL_PIPELINES_BENCH_ATTACK_H

#include <stdint.h>
#include "common/status.h"

#define PIPE_BENCH_ATTACK_ENV "XFFL_BENCH_ATTACK"

/* Applies the attack XFFL_BENCH_ATTACK names to delta[0..n) in place when it targets
 * facility; XFFL_OK and delta untouched when unset or aimed at another facility. */
XFFL_MUST_USE xffl_status pipe_bench_attack(const char *facility, int64_t round, float *delta, int64_t n);

#endif
