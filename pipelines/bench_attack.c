/* pipe_bench_attack (contract in bench_attack.h). BENCHMARK ONLY. */
#include "pipelines/bench_attack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "common/log.h"

static double norm2(const float *d, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)d[i] * d[i];
    return sqrt(s);
}

static void negate100(float *d, int64_t n, uint64_t seed)
{
    (void)seed;
    for (int64_t i = 0; i < n; i++) d[i] *= -100.0f;
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Box-Muller pairs, then scaled so the noise's norm is exactly 100 x the delta's. */
static void noise100(float *d, int64_t n, uint64_t seed)
{
    const double target = 100.0 * norm2(d, n);
    double s = 0;
    for (int64_t i = 0; i < n; i += 2) {
        double u1 = ((splitmix(&seed) >> 11) + 1.0) / 9007199254740993.0, u2 = (splitmix(&seed) >> 11) / 9007199254740992.0;
        double r = sqrt(-2.0 * log(u1));
        d[i] = (float)(r * cos(2 * M_PI * u2));
        if (i + 1 < n) d[i + 1] = (float)(r * sin(2 * M_PI * u2));
    }
    s = norm2(d, n);
    const float k = s > 0 ? (float)(target / s) : 0.0f;
    for (int64_t i = 0; i < n; i++) d[i] *= k;
}

typedef struct {
    const char *name;
    void (*apply)(float *d, int64_t n, uint64_t seed);
} attack;

static const attack attacks[] = {{"negate100", negate100}, {"noise100", noise100}};

xffl_status pipe_bench_attack(const char *facility, int64_t round, float *delta, int64_t n)
{
    const char *env = getenv(PIPE_BENCH_ATTACK_ENV);
    if (!env || !*env) return XFFL_OK;
    const char *colon = strchr(env, ':');
    size_t kl = colon ? (size_t)(colon - env) : strlen(env);
    if (colon && strcmp(colon + 1, facility)) return XFFL_OK;
    for (size_t a = 0; a < sizeof attacks / sizeof attacks[0]; a++) {
        if (strlen(attacks[a].name) != kl || strncmp(attacks[a].name, env, kl)) continue;
        uint64_t seed = 1469598103934665603ull ^ (uint64_t)round;
        for (const char *p = facility; *p; p++) seed = (seed ^ (unsigned char)*p) * 1099511628211ull;
        double before = norm2(delta, n);
        attacks[a].apply(delta, n, seed);
        xffl_log(XFFL_LOG_WARN, "%s: BENCHMARK ATTACK %s=%s applied to round %lld's delta (norm %.4g -> %.4g): "
                 "this facility is sending a deliberately harmful update; unset %s unless benchmarking",
                 facility, PIPE_BENCH_ATTACK_ENV, env, (long long)round, before, norm2(delta, n), PIPE_BENCH_ATTACK_ENV);
        return XFFL_OK;
    }
    return xffl_fail(XFFL_ERR_USAGE, "%s '%s': unknown attack (negate100, noise100, optionally :FACILITY)",
                     PIPE_BENCH_ATTACK_ENV, env);
}
