/* Robust aggregation under one bad facility: K facilities send noisy copies of one
 * true update; one of them sends the update scaled by −S (a sign-flipping, scaled
 * attacker). For each algorithm: relative distance of the aggregate update from the
 * true one; reference: the same with no attacker (fedavg). One JSON line per algorithm.
 * usage: byzantine_bench [K] [S] [MFLOATS] */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "pipelines/algo.h"

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double unif(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (double)(rng >> 11) / 9007199254740992.0;
}

static double rel_err(const float *theta, const float *base, const float *truth, int64_t n)
{
    double e = 0, t = 0;
    for (int64_t i = 0; i < n; i++) {
        double u = (double)theta[i] - base[i];
        e += (u - truth[i]) * (u - truth[i]);
        t += (double)truth[i] * truth[i];
    }
    return sqrt(e / t);
}

int main(int argc, char **argv)
{
    int k = argc > 1 ? atoi(argv[1]) : 5;
    double scale = argc > 2 ? atof(argv[2]) : 10;
    int64_t n = (int64_t)((argc > 3 ? atof(argv[3]) : 1) * 1e6);
    float *base = calloc(n, 4), *truth = malloc(n * 4), *out = malloc(n * 4);
    float **d = malloc(k * sizeof *d);
    double *tok = malloc(k * sizeof *tok);
    for (int64_t i = 0; i < n; i++) truth[i] = (float)((unif() - 0.5) * 2e-3);
    for (int j = 0; j < k; j++) {
        d[j] = malloc(n * 4);
        tok[j] = 1000;
        for (int64_t i = 0; i < n; i++) d[j][i] = truth[i] + (float)((unif() - 0.5) * 1e-3); /* honest noise */
    }
    /* reference: no attacker, plain fedavg */
    pipe_algo_config c;
    pipe_algo_default(PIPE_ALGO_FEDAVG, &c);
    pipe_algo_input in = {.k = k, .deltas = (const float *const *)d, .tokens = tok, .base = base, .n = n, .round = 1};
    if (pipe_algo_apply(&c, &in, out, NULL) != XFFL_OK) return 1;
    double ref = rel_err(out, base, truth, n);
    for (int64_t i = 0; i < n; i++) d[0][i] = (float)(-scale * truth[i]); /* the attacker */
    const pipe_algo_kind kinds[] = {PIPE_ALGO_FEDAVG, PIPE_ALGO_MEDIAN, PIPE_ALGO_TRIMMED};
    for (int a = 0; a < 3; a++) {
        pipe_algo_default(kinds[a], &c);
        c.trim = 0.2;
        if (pipe_algo_apply(&c, &in, out, NULL) != XFFL_OK) {
            fprintf(stderr, "byzantine_bench: %s\n", xffl_errmsg());
            return 1;
        }
        double e = rel_err(out, base, truth, n);
        printf("{\"bench\": \"byzantine_%s\", \"value\": %.4f, \"unit\": \"relative error of the update\", "
               "\"ref_name\": \"fedavg without attacker\", \"ref\": %.4f, \"ratio\": %.3f, \"facilities\": %d, "
               "\"attackers\": 1, \"attack\": \"-%g x true update\", \"floats\": %lld}\n",
               pipe_algo_name(kinds[a]), e, ref, e / ref, k, scale, (long long)n);
    }
    return 0;
}
