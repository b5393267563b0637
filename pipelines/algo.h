/* Aggregation algorithms: how a round's deltas become the next global model.
 *
 * Every algorithm is the same three steps over the parameter table's flat slab:
 *   1. combine the K deltas element-wise into one delta d̄ (weighted/plain mean,
 *      coordinate-wise median or trimmed mean);
 *   2. pseudo-gradient g = −d̄, optionally clipped to a global L2 norm;
 *   3. an outer optimizer step θ_{v+1} = outer(θ_v, g, state): plain (θ − g, i.e.
 *      θ + d̄: fedavg/median/trimmed), Nesterov SGD (diloco) or Adam (fedadam).
 *
 * BIT-DETERMINISTIC (docs/design.md "Determinism"): the caller passes contributors sorted by facility
 * name; every element is computed by one thread, sequentially over facilities, with
 * only + − × ÷ and sqrt; norms are per-chunk double sums (fixed chunk size), added in
 * chunk order. Thread count and CPU model therefore never change a bit of output. */
#ifndef XFFL_PIPE_ALGO_H
#define XFFL_PIPE_ALGO_H

#include <stdint.h>
#include "common/status.h"

typedef enum {
    PIPE_ALGO_FEDAVG,
    PIPE_ALGO_DILOCO,
    PIPE_ALGO_FEDADAM,
    PIPE_ALGO_MEDIAN,
    PIPE_ALGO_TRIMMED,
} pipe_algo_kind;

typedef struct {
    pipe_algo_kind kind;
    int unweighted;      /* 1: plain mean of deltas (the XFFL paper); 0: weighted by tokens */
    double outer_lr;     /* diloco 0.7, fedadam 0.01; ignored by the plain step */
    double momentum;     /* diloco Nesterov momentum (0.9) */
    double beta1, beta2; /* fedadam (0.9, 0.99) */
    double eps;          /* fedadam (1e-8) */
    double trim;         /* trimmed: fraction cut from EACH end (0.1); at least one kept */
    double clip_norm;    /* pseudo-gradient global L2 norm bound; 0 = no clipping */
    int heavy_ball;      /* diloco: 1 = θ − lr·m (heavy ball); 0 (default) = Nesterov */
} pipe_algo_config;

/* Defaults for kind (the values noted above). */
void pipe_algo_default(pipe_algo_kind kind, pipe_algo_config *c);
/* "fedavg", "diloco", "fedadam", "median", "trimmed". */
const char *pipe_algo_name(pipe_algo_kind kind);
/* Name → kind; USAGE error naming the text and listing the choices. */
xffl_status pipe_algo_parse(const char *name, pipe_algo_kind *kind);
/* Checks ranges (lr > 0, 0 ≤ momentum < 1, 0 ≤ trim < 0.5, …); INVALID naming the field. */
xffl_status pipe_algo_validate(const pipe_algo_config *c);

/* Outer optimizer state buffers the algorithm keeps in the version, each a slab
 * like θ: diloco 1 (momentum), fedadam 2 (first and second moment), others 0. */
int pipe_algo_state_count(pipe_algo_kind kind);
/* HDF5 group path of state buffer i inside a version part: diloco "outer";
 * fedadam "outer/m" and "outer/v". The group holds one dataset per tensor name. */
const char *pipe_algo_state_group(pipe_algo_kind kind, int i);

typedef struct {
    int k;                      /* contributors, sorted by facility name */
    const float *const *deltas; /* k slabs of n floats: θ_local − θ_v */
    const double *tokens;       /* k weights (tokens trained); ignored when unweighted */
    const float *base;          /* θ_v, n floats */
    int64_t n;                  /* floats per slab (ckpt_param_table.total) */
    float **state;              /* pipe_algo_state_count() slabs of n floats, updated
                                   in place; all zero at version 0 */
    int64_t round;              /* the round being made (v+1 ≥ 1): Adam bias correction */
    int threads;                /* 0 = OpenMP default; never changes the result */
} pipe_algo_input;

typedef struct {
    double pg_norm;      /* L2 norm of the pseudo-gradient before clipping */
    double clip_scale;   /* factor applied (1 when not clipped) */
    double update_norm;  /* L2 norm of θ_{v+1} − θ_v as computed in double */
} pipe_algo_stats;

/* θ_{v+1} into out (n floats; may not alias base). stats may be NULL.
 * INVALID if k < 1, a weight is negative or all weights are zero, or (defence in
 * depth) a delta holds a non-finite value, naming contributor index and element. */
xffl_status pipe_algo_apply(const pipe_algo_config *c, const pipe_algo_input *in, float *out,
                            pipe_algo_stats *stats);

/* Index of the first non-finite value in x[0..n), or -1 if all are finite. */
int64_t pipe_algo_first_nonfinite(const float *x, int64_t n);

/* Σ x² over x[0..n) in double, as per-chunk sums added in chunk order: the same
 * bits for any thread count. */
double pipe_algo_sqnorm(const float *x, int64_t n, int threads);

#endif
