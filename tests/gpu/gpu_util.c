/* Helpers shared by the tests/gpu tests (gpu_test.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "tests/gpu/gpu_test.h"

double gt_rel_err(const float *a, const float *b, int64_t n)
{
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? INFINITY : d;
        if (fabs((double)b[i]) > den) den = fabs((double)b[i]);
    }
    return num / den;
}

double gt_rel_err_d(const float *a, const double *b, int64_t n)
{
    double num = 0, den = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        if (d > num || isnan(d)) num = isnan(d) ? INFINITY : d;
        if (fabs(b[i]) > den) den = fabs(b[i]);
    }
    return num / den;
}

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void gt_fill(float *x, int64_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)((mix(&s) >> 40) / (double)(1ull << 24));
}

void gt_tokens(int32_t *x, int64_t n, uint64_t seed, int V)
{
    uint64_t s = seed;
    for (int64_t i = 0; i < n; i++) x[i] = (int32_t)(mix(&s) % (uint64_t)V);
}

float *gt_init_params(const ckpt_param_table *t, uint64_t seed)
{
    float *p = malloc((size_t)t->total * sizeof(float));
    if (!p) return NULL;
    for (int i = 0; i < t->count; i++) ckpt_param_init(t, i, seed, p + t->params[i].offset);
    return p;
}

/* Training text: learnable structure (repeated sentences, varying order) so the loss of
 * 50 steps falls well below ln(256) and the CPU and GPU trajectories can be compared. */
static const char *TEXT[] = {
    "The store is the coordinator and the checkpoints are the protocol. ",
    "Every facility reads the latest version, trains locally and uploads a delta. ",
    "An aggregation job merges the deltas into the next version of the model. ",
    "Nothing is shared but an object store; every step is a batch job that exits. ",
    "Gradients are summed over the GPUs of a facility with NCCL after each step. ",
};

void gt_text_batch(int i, int B, int T, int32_t *inputs, int32_t *targets)
{
    int nt = (int)(sizeof TEXT / sizeof TEXT[0]);
    for (int b = 0; b < B; b++) {
        uint64_t s = (uint64_t)i * 1000003u + (uint64_t)b;
        int k = (int)(mix(&s) % (uint64_t)nt), pos = (int)(mix(&s) % 40);
        const char *txt = TEXT[k];
        for (int t = 0; t <= T; t++) {
            while (!txt[pos]) {
                k = (k + 1 + (int)(mix(&s) % 2)) % nt;
                txt = TEXT[k];
                pos = 0;
            }
            int c = (unsigned char)txt[pos++];
            if (t < T) inputs[b * T + t] = c;
            if (t > 0) targets[b * T + t - 1] = c;
        }
    }
}
