/* Host-range AdamW and the chunked gradient norm (contract in shard.h). */
#include "kernels/shard.h"

#include <math.h>

#include "kernels/cpu/ops.h"

int64_t kern_norm_chunks(int64_t n) { return (n + KERN_NORM_CHUNK - 1) / KERN_NORM_CHUNK; }

void kern_sumsq_parts(const float *x, int64_t n, double *parts) { kcpu_sumsq_parts(x, n, parts); }

double kern_norm_from_parts(const double *parts, int64_t count)
{
    double total = 0;
    for (int64_t c = 0; c < count; c++) total += parts[c];
    return sqrt(total);
}

float kern_clip_scale(const kern_adamw_config *c, double norm)
{
    return c->grad_clip > 0 && norm > c->grad_clip ? (float)(c->grad_clip / norm) : 1.0f;
}

void kern_adamw_range(const ckpt_param_table *t, int64_t lo, int64_t hi, float *p, uint16_t *pb, const float *g,
                      float *m, float *v, const kern_adamw_config *c, int step, int64_t opt_step, float gscale)
{
    float lr = kern_lr_at(c, step);
    double bc1 = 1.0 - pow(c->beta1, (double)opt_step), bc2 = 1.0 - pow(c->beta2, (double)opt_step);
    for (int i = 0; i < t->count; i++) {
        const ckpt_param *q = &t->params[i];
        int64_t a = q->offset > lo ? q->offset : lo, b = q->offset + q->numel < hi ? q->offset + q->numel : hi;
        if (a >= b) continue;
        float wd = q->kind == CKPT_KIND_NORM ? 0.0f : c->weight_decay;
        kcpu_adamw(p + (a - lo), pb ? pb + (a - lo) : NULL, g + (a - lo), m + (a - lo), v + (a - lo), b - a, lr, c->beta1, c->beta2, c->eps, wd,
                   bc1, bc2, gscale);
    }
}
