/* The benchmark-only Byzantine hook (pipelines/bench_attack.h): off unless
 * XFFL_BENCH_ATTACK is set, aimed at one facility, each use logged as a WARN, the two
 * attacks bench/byzantine.sh relies on, and an unknown kind refused. */
#include <CUnit/CUnit.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"
#include "pipelines/bench_attack.h"
#include "unit.h"

enum { N = 1001 };

static double norm(const float *d)
{
    double s = 0;
    for (int i = 0; i < N; i++) s += (double)d[i] * d[i];
    return sqrt(s);
}

static void fill(float *d)
{
    for (int i = 0; i < N; i++) d[i] = (float)((i % 7) - 3) * 1e-3f;
}

static void test_attacks(void)
{
    static float d[N], e[N];
    fill(d);
    const double n0 = norm(d);
    unsetenv(PIPE_BENCH_ATTACK_ENV);
    T_OK(pipe_bench_attack("f4", 3, d, N));
    fill(e);
    CU_ASSERT_EQUAL(memcmp(d, e, sizeof d), 0); /* unset: the honest delta */

    FILE *f = tmpfile();
    CU_ASSERT_PTR_NOT_NULL_FATAL(f);
    xffl_log_config was = xffl_log_setup(&(xffl_log_config){.level = XFFL_LOG_WARN, .stream = f});
    setenv(PIPE_BENCH_ATTACK_ENV, "negate100:f4", 1);
    T_OK(pipe_bench_attack("f1", 3, d, N)); /* another facility: untouched */
    CU_ASSERT_EQUAL(memcmp(d, e, sizeof d), 0);
    T_OK(pipe_bench_attack("f4", 3, d, N));
    for (int i = 0; i < N; i++) CU_ASSERT_EQUAL(d[i], e[i] * -100.0f);

    setenv(PIPE_BENCH_ATTACK_ENV, "noise100", 1); /* no facility: every one */
    fill(d);
    T_OK(pipe_bench_attack("f1", 3, d, N));
    CU_ASSERT_DOUBLE_EQUAL(norm(d) / n0, 100.0, 1e-3);
    double dot = 0;
    for (int i = 0; i < N; i++) dot += (double)d[i] * e[i];
    CU_ASSERT_TRUE(fabs(dot) / (norm(d) * n0) < 0.2); /* not the delta's direction */
    fill(e);
    T_OK(pipe_bench_attack("f1", 3, e, N));
    CU_ASSERT_EQUAL(memcmp(d, e, sizeof d), 0); /* same round and facility: same bytes */

    setenv(PIPE_BENCH_ATTACK_ENV, "negate10", 1);
    CU_ASSERT_EQUAL(pipe_bench_attack("f1", 3, d, N), XFFL_ERR_USAGE);
    unsetenv(PIPE_BENCH_ATTACK_ENV);

    /* every use is a WARN naming the variable: three uses, three lines */
    fflush(f);
    rewind(f);
    char line[1024];
    int warns = 0;
    while (fgets(line, sizeof line, f)) warns += strstr(line, "BENCHMARK ATTACK XFFL_BENCH_ATTACK=") != NULL;
    CU_ASSERT_EQUAL(warns, 3);
    xffl_log_setup(&was);
    fclose(f);
}

void suite_bench_attack(void)
{
    CU_pSuite s = CU_add_suite("bench_attack", NULL, NULL);
    CU_add_test(s, "XFFL_BENCH_ATTACK: off, aimed, negate100, noise100, unknown refused, WARN each use", test_attacks);
}
