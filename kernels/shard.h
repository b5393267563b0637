/* The optimizer step on a host range of the parameter slab, for a sharded optimizer
 * (ZeRO: each rank holds AdamW state and fp32 master weights for its own range;
 * pipelines/loop.h). The arithmetic is the cpu backend's (kernels/backend.h "AdamW"):
 * the same elementwise update and the same gradient norm, a double sum over fixed
 * KERN_NORM_CHUNK-element chunks added in chunk order. So a range split at chunk
 * boundaries, with its chunks' partial sums gathered and added in order, gives the bits
 * of the whole-slab step whatever the number of ranges. Host memory, any backend. */
#ifndef XFFL_KERN_SHARD_H
#define XFFL_KERN_SHARD_H

#include <stdint.h>
#include "common/status.h"
#include "kernels/kern.h"
#include "libckpt/model.h"

/* Elements per gradient-norm chunk (the cpu backend's kcpu_sumsq uses the same). */
enum { KERN_NORM_CHUNK = 1 << 16 };

/* Chunks covering n elements. */
int64_t kern_norm_chunks(int64_t n);
/* parts[c] = sum of x[i]^2 (double, in element order) over chunk c of x[0..n). */
void kern_sumsq_parts(const float *x, int64_t n, double *parts);
/* The global norm from every chunk's partial sum, added in chunk order. */
double kern_norm_from_parts(const double *parts, int64_t count);
/* The clip factor for a pre-clip norm (1 when clip is off or not reached). */
float kern_clip_scale(const kern_adamw_config *c, double norm);

/* One AdamW step on elements [lo, hi) of the table's slab: p, g, m, v hold those
 * elements (index 0 = element lo), and pb, unless NULL, receives the new p rounded to
 * bf16 (kern_round_bf16's bits) in the same pass. lr = kern_lr_at(c, step); opt_step is
 * the bias-correction counter after this step (1 on the first); g is scaled by gscale
 * first; no weight decay on norm gains. */
void kern_adamw_range(const ckpt_param_table *t, int64_t lo, int64_t hi, float *p, uint16_t *pb, const float *g,
                      float *m, float *v, const kern_adamw_config *c, int step, int64_t opt_step, float gscale);

#endif
