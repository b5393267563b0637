/* Aggregation algorithms: how a round's deltas become the next global model.
 *
 * Every algorithm is the same steps over the parameter table's flat slab:
 *   0a. when delta_filter is set: leave out every delta far from the coordinate-wise
 *      median m of the K deltas (‖d_j − m‖ > delta_filter x the median of these
 *      distances) or pointing away from it (d_j · m < 0); the nearest one always stays.
 *      The steps below see the K' deltas kept (their weights too);
 *   0. per delta, when delta_clip is set: a factor that bounds its L2 norm by
 *      delta_clip x the median of the K deltas' norms (one facility cannot outweigh
 *      the others by sending a huge delta), applied as each value is read;
 *   1. combine the K deltas element-wise into one delta d̄ (weighted/plain mean,
 *      coordinate-wise median or trimmed mean);
 *   2. pseudo-gradient g = −d̄, optionally clipped to a global L2 norm;
 *   3. an outer optimizer step θ_{v+1} = outer(θ_v, g, state): plain (θ − g, i.e.
 *      θ + d̄: fedavg/median/trimmed), Nesterov SGD (diloco) or Adam (fedadam).
 * An algorithm is one pipe_algo_def (below): the builtins are the table in algo.c;
 * pipe_algo_register adds one without touching anything else.
 *
 * BIT-DETERMINISTIC (docs/design.md "Determinism"): the caller passes contributors sorted by facility
 * name; every element is computed by one thread, sequentially over facilities, with
 * only + − × ÷ and sqrt; norms are per-chunk double sums (fixed chunk size), added in
 * chunk order. Thread count and CPU model therefore never change a bit of output. */
#ifndef XFFL_PIPE_ALGO_H
#define XFFL_PIPE_ALGO_H

#include <stddef.h>
#include <stdint.h>
#include "common/status.h"

/* An algorithm's index in the table: the builtins first (these names for the first
 * five; another builtin is found by its name), registered ones after. */
typedef enum {
    PIPE_ALGO_FEDAVG,
    PIPE_ALGO_DILOCO,
    PIPE_ALGO_FEDADAM,
    PIPE_ALGO_MEDIAN,
    PIPE_ALGO_TRIMMED,
} pipe_algo_kind;

enum {
    PIPE_ALGO_MAX = 16,      /* table capacity, builtins included */
    PIPE_ALGO_MAX_STATE = 4, /* outer state buffers of one algorithm */
    PIPE_ALGO_MAX_K = 256,   /* contributors one round may combine */
};

typedef struct {
    pipe_algo_kind kind;
    int unweighted;      /* 1: plain mean of deltas (the XFFL paper); 0: weighted by tokens */
    double outer_lr;     /* diloco 0.7, fedadam 0.01; ignored by the plain step */
    double momentum;     /* diloco Nesterov momentum (0.9) */
    int nesterov;        /* diloco: 1 (default) = Nesterov; 0 = θ − lr·m (heavy ball) */
    double beta1, beta2; /* fedadam (0.9, 0.99) */
    double eps;          /* fedadam (1e-8) */
    double trim;         /* trimmed: fraction cut from EACH end (0.1); at least one kept */
    double clip_norm;    /* pseudo-gradient global L2 norm bound; 0 = no clipping */
    double delta_clip;   /* step 0: each delta's norm at most delta_clip x the median
                            delta norm; 0 = no per-delta clipping */
    double delta_filter; /* step 0a: drop a delta farther than delta_filter x the median
                            distance from the coordinate-wise median, or pointing away
                            from it; 0 = keep all, else >= 1. Default
                            PIPE_ALGO_ROBUST_FILTER for median and trimmed (and with
                            delta_clip, pipelines/init.c), 0 for the others */
    double outer_warmup; /* diloco: round t < outer_warmup steps with outer_lr x t /
                            outer_warmup (a linear warm-up of the outer learning rate,
                            in rounds); 0 = none (0; absent from older files) */
} pipe_algo_config;

/* The robust algorithms' default delta_filter. A robust combine alone cannot stop an
 * authorised facility that sends its delta x -100: with 4 facilities the coordinate-wise
 * median (or a trimmed mean cutting one at each end) still takes a middle value that
 * the attacker has pulled, and the bench's loss ends 5.7-7.8 % above the honest run;
 * leaving out deltas far from, or pointing away from, the median first gives 1.3-1.8 %
 * (docs/federation.md "Robustness"). 3 x the median distance drops no honest delta in
 * the bench's IID and non-IID settings. */
#define PIPE_ALGO_ROBUST_FILTER 3.0

/* The algorithm parameters federation.h5 stores, in file order: every algorithm
 * writes all of them (a new parameter is a field above and a row here; an optional
 * one a file lacks reads back as 0, off). */
typedef enum { PIPE_ALGO_PARAM_DOUBLE, PIPE_ALGO_PARAM_FLAG } pipe_algo_param_type;
typedef struct {
    const char *attr;          /* federation.h5 attribute: "outer_lr" */
    pipe_algo_param_type type; /* a double, or an int that is 0 or 1 */
    size_t offset;             /* offsetof(pipe_algo_config, field) */
    int optional;              /* 1: files made before it existed lack it, and it is
                                  written only when not 0 (a federation that does not
                                  use it keeps the bytes older xffl wrote and reads) */
} pipe_algo_param;
/* The rows; *n receives their count. */
const pipe_algo_param *pipe_algo_params(int *n);

/* Defaults for kind (the values noted above). */
void pipe_algo_default(pipe_algo_kind kind, pipe_algo_config *c);
/* "fedavg", "diloco", "fedadam", "median", "trimmed", a registered name, or "unknown". */
const char *pipe_algo_name(pipe_algo_kind kind);
/* Name → kind; USAGE error naming the text and listing the choices. */
XFFL_MUST_USE xffl_status pipe_algo_parse(const char *name, pipe_algo_kind *kind);
/* Checks ranges (lr > 0, 0 ≤ momentum < 1, 0 ≤ trim < 0.5, …) and the algorithm's own
 * rules; INVALID naming the field. */
XFFL_MUST_USE xffl_status pipe_algo_validate(const pipe_algo_config *c);
/* "fedavg, diloco, fedadam, median, trimmed" into buf (cap bytes, truncated),
 * first_note after the first name (NULL: none): the choices in help and errors. */
void pipe_algo_list(char *buf, size_t cap, const char *first_note);

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
    const double *delta_scale;  /* step 0's k factors, set by pipe_algo_apply for the
                                   combine step (read delta j at i as
                                   (double)deltas[j][i] * delta_scale[j]); NULL: all 1 */
} pipe_algo_input;

typedef struct {
    double pg_norm;      /* L2 norm of the pseudo-gradient before clipping */
    double clip_scale;   /* factor applied (1 when not clipped) */
    double update_norm;  /* L2 norm of θ_{v+1} − θ_v as computed in double */
    int deltas_clipped;  /* deltas step 0 scaled down */
    int deltas_dropped;  /* deltas step 0a left out (delta_filter) */
    /* step 0a's figures per contributor (input order; delta_filter > 0 only):
     * ‖d_j − m‖ / median_i ‖d_i − m‖, cos(d_j, m) (0 when either is zero), left out */
    double filter_distance[PIPE_ALGO_MAX_K];
    double filter_cosine[PIPE_ALGO_MAX_K];
    unsigned char filter_dropped[PIPE_ALGO_MAX_K];
} pipe_algo_stats;

/* One round's outer step context: what every element of the step shares. */
typedef struct {
    const pipe_algo_config *c;
    float *const *state; /* the algorithm's n_state slabs, updated in place */
    double scale;        /* factor on the pseudo-gradient (the clip step; 1 = none) */
    double aux[4];       /* per-round constants from prepare (fedadam: β1^t, β2^t) */
} pipe_algo_round;

/* One algorithm: a table entry. Every function sees elements [lo, hi) of one fixed-size
 * chunk and must compute each element alone, in a fixed order (the contract above). */
typedef struct {
    const char *name; /* federation.h5's algorithm, --algo, every INDEX's algorithm line */
    /* Changes to the common defaults (pipe_algo_default); NULL: none. */
    void (*defaults)(pipe_algo_config *c);
    /* Rules beyond the common ranges; INVALID naming the field. NULL: none. */
    xffl_status (*validate)(const pipe_algo_config *c);
    /* A robust combine: how many of k values it leaves out at each element (median of
     * 3: 2; trimmed mean: 2 x the cut). init refuses a quorum at which this is 0 (the
     * algorithm would tolerate no faulty facility). NULL: not robust, nothing checked. */
    int (*excludes)(const pipe_algo_config *c, int k);
    /* Step 0: scale[j] for each of in->k deltas from their L2 norms (delta_clip > 0 only).
     * NULL: the algorithm refuses delta_clip. Builtins: pipe_algo_clip_deltas. */
    void (*per_delta)(const pipe_algo_config *c, const pipe_algo_input *in, const double *norms, double *scale);
    int n_state;                                  /* outer state slabs kept in versions */
    const char *state_groups[PIPE_ALGO_MAX_STATE]; /* their group paths in a version part */
    /* Step 1: d̄ at each element into out, from in's deltas and the weights w (Σ wsum). */
    void (*combine)(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum, int64_t lo,
                    int64_t hi, float *out);
    /* Step 2: the factor on g = −d̄ given ‖g‖ (e.g. clipping to clip_norm); NULL: 1. */
    double (*clip)(const pipe_algo_config *c, double pg_norm);
    /* Once per round before step 3: r->aux from the config and in (round). NULL: none. */
    void (*prepare)(const pipe_algo_config *c, const pipe_algo_input *in, pipe_algo_round *r);
    /* Step 3: θ_{v+1} into out, which holds d̄ on entry; base is θ_v. */
    void (*outer)(const pipe_algo_round *r, const float *base, int64_t lo, int64_t hi, float *out);
} pipe_algo_def;

/* Adds def to the table (def must outlive every use) and gives its kind in *kind.
 * EXISTS naming a taken name, USAGE when the table is full or def is incomplete.
 * Not thread-safe: register before any work starts. */
XFFL_MUST_USE xffl_status pipe_algo_register(const pipe_algo_def *def, pipe_algo_kind *kind);
/* The table entry of kind, or NULL. */
const pipe_algo_def *pipe_algo_get(pipe_algo_kind kind);
/* Entries in the table, builtins and registered ones. */
int pipe_algo_count(void);

/* Pieces the builtin entries are made of, for registered ones to reuse. */
void pipe_algo_combine_mean(const pipe_algo_config *c, const pipe_algo_input *in, const double *w, double wsum,
                            int64_t lo, int64_t hi, float *out);
double pipe_algo_clip_to_norm(const pipe_algo_config *c, double pg_norm);
/* Step 0 of the builtins: delta j scaled to delta_clip x median(norms) when longer. */
void pipe_algo_clip_deltas(const pipe_algo_config *c, const pipe_algo_input *in, const double *norms, double *scale);

/* Step 0a's verdict: keep[j] = 1 for each of k deltas that stays, from their distances
 * to the coordinate-wise median (dist) and their dot products with it (dot). */
void pipe_algo_filter_deltas(const pipe_algo_config *c, int k, const double *dist, const double *dot, int *keep);

/* θ_{v+1} into out (n floats; may not alias base). stats may be NULL.
 * INVALID if k < 1, a weight is negative or all weights are zero, or (defence in
 * depth) a delta holds a non-finite value, naming contributor index and element. */
XFFL_MUST_USE xffl_status pipe_algo_apply(const pipe_algo_config *c, const pipe_algo_input *in, float *out,
                            pipe_algo_stats *stats);

/* Index of the first non-finite value in x[0..n), or -1 if all are finite. */
int64_t pipe_algo_first_nonfinite(const float *x, int64_t n);

/* Σ x² over x[0..n) in double, as per-chunk sums added in chunk order: the same
 * bits for any thread count. */
double pipe_algo_sqnorm(const float *x, int64_t n, int threads);

#endif
